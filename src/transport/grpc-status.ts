import { Metadata, type ServiceError } from "@grpc/grpc-js";
import type { TimeoutKind } from "../core/categories";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { STATUS_DETAILS_KEY, decodeStatusDetails, type StatusDetail } from "../core/status-details";

/** What the caller knew about a call when grpc-js reported its status. */
export interface CallFacts {
  method: string;
  workerId?: string;
  requestId?: string;
  idempotent: boolean;
  /** When the effective deadline falls (epoch ms), and which limit set it. */
  deadlineAt: number;
  deadlineKind: TimeoutKind;
  initialMetadata?: Metadata;
}

/** Keys the transport owns; never shown to users as the worker's metadata. */
const RESERVED_KEYS = ["grpc-status", "grpc-message", STATUS_DETAILS_KEY, "content-type", "grpc-encoding", "grpc-accept-encoding", "user-agent", "te"];

// The details grpc-js itself writes (node_modules/@grpc/grpc-js/src/subchannel-call.ts,
// load-balancer-pick-first.ts, client-interceptors.ts). They are matched from the start only, so
// that a status the worker sent (which arrives in trailers) is never taken for a local failure
// because its message mentions, say, ECONNRESET.
/** The call never left this process: no connection, refused stream, closed channel. */
const NOT_DELIVERED = /^(No connection established|Stream refused by server|Channel closed before call started)/;
/** The connection failed while connecting because the peer did not speak HTTP/2. */
const NOT_HTTP2 = /^No connection established\. Last error: Protocol error/;
/** The connection broke after the request was sent. */
const CONNECTION_BROKE = /^(Connection dropped|Write error|Write failed|(read|write) (ECONNRESET|ETIMEDOUT|EPIPE))/;
/** Bytes arrived that are not a valid gRPC response for the method. */
const MALFORMED = /^(Response message parsing error|Received RST_STREAM|No status information received|Received HTTP status code|Protocol error)/;
/** grpc-js's own deadline timer fired (the worker's "Deadline Exceeded" differs in case and form). */
const LOCAL_DEADLINE = /^Deadline exceeded after /;
/** A load-balancing policy (round_robin for remote targets) prefixes its name to grpc-js's local failures. */
const LB_PREFIX = /^(round_robin|pick_first|weighted_round_robin|outlier_detection): (?=No connection established|Stream refused|Channel closed)/;

/** Copies metadata without the transport's reserved keys; `-bin` values stay Buffers. */
export function userMetadata(metadata: Metadata | undefined): Metadata {
  const clean = new Metadata();
  if (!metadata) return clean;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    if (RESERVED_KEYS.includes(key)) continue;
    for (const v of values) clean.add(key, v);
  }
  return clean;
}

function statusDetailsOf(metadata: Metadata | undefined): StatusDetail[] {
  const raw = metadata?.get(STATUS_DETAILS_KEY)[0];
  if (!raw || typeof raw === "string") return [];
  return decodeStatusDetails(raw)?.details ?? [];
}

/**
 * Turns a grpc-js status error into an `RpcError`, placing it in one of the categories of
 * docs/errors.md from its code, the details grpc-js uses for local failures, and the deadline.
 */
export function rpcErrorFromServiceError(err: Partial<ServiceError>, facts: CallFacts): RpcError {
  const code = typeof err.code === "number" ? err.code : Status.UNKNOWN;
  const details = (err.details ?? err.message ?? "").replace(LB_PREFIX, "");
  const common = {
    method: facts.method,
    workerId: facts.workerId,
    requestId: facts.requestId,
    idempotent: facts.idempotent,
    initialMetadata: userMetadata(facts.initialMetadata),
    trailingMetadata: userMetadata(err.metadata),
    statusDetails: statusDetailsOf(err.metadata),
    cause: err,
  };
  if (!(code in Status) || code === Status.OK) {
    return new RpcError({ ...common, code: Status.INTERNAL, details: `invalid grpc-status ${String(code)} from worker: ${details}`, category: "protocol" });
  }
  // A DEADLINE_EXCEEDED before the deadline was raised by the servicer (e.g. a TimeoutError): a worker error.
  if (code === Status.DEADLINE_EXCEEDED && (LOCAL_DEADLINE.test(details) || Date.now() >= facts.deadlineAt - 1)) {
    return new RpcError({ ...common, code, details, category: "timeout", timeoutKind: facts.deadlineKind });
  }
  if (code === Status.UNAVAILABLE && NOT_HTTP2.test(details)) {
    return new RpcError({ ...common, code: Status.INTERNAL, details: `the peer does not speak gRPC over HTTP/2: ${details}`, category: "protocol", reachedWorker: false });
  }
  if (code === Status.UNAVAILABLE && NOT_DELIVERED.test(details)) {
    return new RpcError({ ...common, code, details, category: "connection", reachedWorker: false });
  }
  if (CONNECTION_BROKE.test(details) && code !== Status.INTERNAL) {
    return new RpcError({ ...common, code: Status.UNAVAILABLE, details, category: "connection", reachedWorker: true });
  }
  if (MALFORMED.test(details)) {
    return new RpcError({ ...common, code: Status.INTERNAL, details, category: "protocol" });
  }
  return new RpcError({ ...common, code: code as Status, details, category: "worker" });
}
