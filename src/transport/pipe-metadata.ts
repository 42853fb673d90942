import { CALL_ID_KEY, REQUEST_ID_KEY } from "../core/metadata";
import type { MetadataEntry } from "../gen/procgrpc/internal/v1/pipeline";
import type { OutgoingCall } from "./outgoing-call";

/** A call's invocation metadata as `PipeCall` fields. */
export interface PipeCallMetadata {
  metadata: MetadataEntry[];
  requestId: string;
  attemptId: string;
}

const NO_ENTRIES: MetadataEntry[] = [];

/**
 * The call's metadata for a `PipeCall`: `x-request-id` and `procgrpc-call-id`, which every call
 * carries as the last two entries (`outgoingMetadata` puts them there unless the caller set
 * `x-request-id` itself), travel as the plain fields `request_id` and `attempt_id`; the worker
 * appends them to the invocation metadata in that order, so the servicer sees the same metadata
 * as on the plain transport. Anything else (or ids elsewhere in the order) goes as entries:
 * `-bin` values as bytes, text as UTF-8.
 */
export function pipeCallMetadata(out: OutgoingCall): PipeCallMetadata {
  const json = out.metadata.toJSON() as Record<string, (string | Buffer)[]>;
  const keys = Object.keys(json);
  let n = keys.length;
  let attemptId = "";
  let requestId = "";
  if (n > 0 && keys[n - 1] === CALL_ID_KEY && isOnly(json[CALL_ID_KEY], out.callId)) {
    attemptId = out.callId;
    n--;
    if (n > 0 && keys[n - 1] === REQUEST_ID_KEY && isOnly(json[REQUEST_ID_KEY], out.requestId)) {
      requestId = out.requestId;
      n--;
    }
  }
  if (n === 0) return { metadata: NO_ENTRIES, requestId, attemptId };
  const metadata: MetadataEntry[] = [];
  for (let i = 0; i < n; i++) {
    const key = keys[i];
    for (const v of json[key]) metadata.push({ key, value: typeof v === "string" ? Buffer.from(v) : v });
  }
  return { metadata, requestId, attemptId };
}

/** True when `values` is exactly one non-empty string equal to `id` (an empty field means "absent"). */
function isOnly(values: readonly (string | Buffer)[] | undefined, id: string): boolean {
  return values !== undefined && values.length === 1 && values[0] === id && id !== "";
}
