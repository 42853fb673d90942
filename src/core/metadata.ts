import { Metadata } from "./grpc-metadata";
import { RpcError } from "./rpc-error";
import { Status } from "./status";

/** Metadata to send: a grpc-js `Metadata`, or a plain object (`-bin` keys take Buffers). */
export type MetadataInit = Metadata | Readonly<Record<string, string | Buffer | readonly (string | Buffer)[]>>;

/** The metadata key carrying the request id into Python's logs (one per logical call). */
export const REQUEST_ID_KEY = "x-request-id";

/**
 * The metadata key carrying the pool's identity of one attempt of a call: unique, set by the
 * pool on every attempt over any value the caller gave, so the worker's report of running
 * handlers can be matched to calls without trusting caller-chosen ids.
 */
export const CALL_ID_KEY = "procgrpc-call-id";

/**
 * The most request metadata a call may carry, counted as HTTP/2 does (name + value + 32 bytes
 * per entry; `-bin` values base64-encoded). The worker's server refuses header blocks over 8 KiB
 * at random and over 16 KiB always; this limit keeps every call well inside, on every transport.
 */
export const MAX_REQUEST_METADATA_BYTES = 8192;

/**
 * Keys the transport owns. The caller may not set them: grpc-js would drop or overwrite some
 * (`user-agent`, `grpc-timeout`) and pass others through, so the worker would see something
 * different on each transport.
 */
const RESERVED_REQUEST_KEY = /^(grpc-|:)|^(content-type|te|user-agent|host|accept-encoding)$/;

/** Keys stripped from the metadata users see in responses: the transport's and procgrpc's own. */
const HIDDEN_RESPONSE_KEY = /^(grpc-status|grpc-message|grpc-status-details-bin|content-type|grpc-encoding|grpc-accept-encoding|user-agent|te|procgrpc-.*)$/;

function invalid(details: string, code = Status.INTERNAL): RpcError {
  return new RpcError({ code, details, category: "protocol", reachedWorker: false });
}

function entrySize(key: string, value: string | Buffer): number {
  const valueBytes = typeof value === "string" ? Buffer.byteLength(value) : Math.ceil(value.length / 3) * 4;
  return key.length + valueBytes + 32;
}

/**
 * The metadata of one attempt: the caller's entries, checked once for every transport (legal keys
 * and values as grpc-js checks them, no reserved keys, at most `MAX_REQUEST_METADATA_BYTES`),
 * with `x-request-id` set to the call's request id and `procgrpc-call-id` to the attempt's id. Throws an `RpcError`
 * (INTERNAL, or RESOURCE_EXHAUSTED for size; category `protocol`, never reached a worker).
 */
export function outgoingMetadata(init: MetadataInit | undefined, requestId: string, callId: string): Metadata {
  const md = new Metadata();
  let size = 0;
  const add = (rawKey: string, value: string | Buffer): void => {
    const key = rawKey.toLowerCase();
    if (RESERVED_REQUEST_KEY.test(key) || key === CALL_ID_KEY) throw invalid(`invalid request metadata: key "${rawKey}" is reserved for the transport`);
    try {
      md.add(key, value);
    } catch (err) {
      throw invalid(`invalid request metadata: ${(err as Error).message}`);
    }
    size += entrySize(key, value);
  };
  if (init instanceof Metadata) {
    for (const [key, values] of Object.entries(init.toJSON())) for (const v of values) add(key, v);
  } else if (init) {
    if (typeof init !== "object") throw invalid(`invalid request metadata: expected a Metadata or a plain object, got ${typeof init}`);
    for (const [key, value] of Object.entries(init)) {
      const values = Array.isArray(value) ? (value as readonly (string | Buffer)[]) : [value as string | Buffer];
      for (const v of values) {
        if (typeof v !== "string" && !Buffer.isBuffer(v)) throw invalid(`invalid request metadata: the value of "${key}" must be a string or a Buffer, got ${typeof v}`);
        add(key, v);
      }
    }
  }
  if (md.get(REQUEST_ID_KEY).length === 0) size += entrySize(REQUEST_ID_KEY, requestId);
  md.set(REQUEST_ID_KEY, requestId);
  md.set(CALL_ID_KEY, callId);
  size += entrySize(CALL_ID_KEY, callId);
  if (size > MAX_REQUEST_METADATA_BYTES) {
    throw invalid(`request metadata is ${size} bytes, over the limit of ${MAX_REQUEST_METADATA_BYTES} (counted as HTTP/2 does)`, Status.RESOURCE_EXHAUSTED);
  }
  return md;
}

/** The `x-request-id` the caller put in the metadata, if any (it then names the call). */
export function requestIdIn(init: MetadataInit | undefined): string | undefined {
  if (!init) return undefined;
  if (init instanceof Metadata) {
    const v = init.get(REQUEST_ID_KEY)[0];
    return typeof v === "string" ? v : undefined;
  }
  for (const [key, value] of Object.entries(init)) {
    if (key.toLowerCase() !== REQUEST_ID_KEY) continue;
    const first = Array.isArray(value) ? (value as readonly unknown[])[0] : value;
    return typeof first === "string" ? first : undefined;
  }
  return undefined;
}

/** A copy of metadata without the keys the transport and procgrpc own; `-bin` values stay Buffers. */
export function userMetadata(metadata: Metadata | undefined): Metadata {
  const clean = new Metadata();
  if (!metadata) return clean;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    if (HIDDEN_RESPONSE_KEY.test(key)) continue;
    for (const v of values) clean.add(key, v);
  }
  return clean;
}

/** A copy of `options` whose metadata also carries `entries` (the caller's own values win for the same key only when `keepExisting`). */
export function withMetadata<O extends { metadata?: MetadataInit }>(options: O, entries: Readonly<Record<string, string>>, keepExisting = false): O {
  const init = options.metadata;
  let metadata: MetadataInit;
  if (init instanceof Metadata) {
    const md = init.clone();
    for (const [k, v] of Object.entries(entries)) if (!keepExisting || md.get(k).length === 0) md.set(k, v);
    metadata = md;
  } else {
    metadata = keepExisting ? { ...entries, ...init } : { ...init, ...entries };
  }
  return { ...options, metadata };
}
