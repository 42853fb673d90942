import type { Metadata } from "@grpc/grpc-js";
import type { TimeoutKind } from "../core/categories";
import { userMetadata } from "../core/metadata";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { STATUS_DETAILS_KEY, decodeStatusDetails, type StatusDetail } from "../core/status-details";
import { hasSwitchedOffDetail } from "../core/switched-off";

/** A status as a transport received or made it: grpc-js's `StatusObject`, or a pipelined result. */
export interface ReceivedStatus {
  code: number;
  details: string;
  /** The trailers (raw: transport keys included). */
  metadata: Metadata | undefined;
}

/** What the caller knew about a call when its status arrived. */
export interface CallFacts {
  method: string;
  workerId?: string;
  requestId?: string;
  idempotent: boolean;
  /** When the effective deadline falls (epoch ms), and which limit set it. */
  deadlineAt: number;
  deadlineKind: TimeoutKind;
  /** When the attempt started (epoch ms), for the wording of a deadline error. */
  startedAt: number;
  /** Headers received before the status, if any (raw). */
  initialMetadata?: Metadata;
  /** The target was being stopped or had gone when the status arrived. */
  targetStopping?: boolean;
}

/**
 * The trailer a procgrpc worker adds when it ends a call because it is shutting down (its drain
 * grace ran out): the call was cut off, like a dropped connection, not refused by the servicer.
 */
export const WORKER_STOPPING_KEY = "procgrpc-worker-stopping";

// The details grpc-js itself writes (node_modules/@grpc/grpc-js/build/src: subchannel-call.js,
// load-balancer-pick-first.js, resolving-call.js, stream-decoder.js, compression-filter.js).
// They are matched from the start only, so that a status the worker sent (which arrives in
// trailers) is never taken for a local failure because its message mentions, say, ECONNRESET.
/** The call never left this process: no connection, refused stream, closed channel. */
const NOT_DELIVERED = /^(No connection established|Stream refused by server|Channel closed before call started|Subchannel not ready)/;
/** The connection failed while connecting because the peer did not speak HTTP/2. */
const NOT_HTTP2 = /^No connection established\. Last error: (No connection established\. Last error: )?(Error: )?(Protocol error|Parse Error|HPE_|ERR_HTTP2_ERROR|ERR_HTTP2_SESSION_ERROR)/i;
/** The connection broke after the request was sent. */
const CONNECTION_BROKE = /^(Connection dropped|Write error|Write failed|(read|write) (ECONNRESET|ETIMEDOUT|EPIPE))/;
/** The peer ended the stream without a proper status (a broken server, or one going away). */
const STREAM_CUT = /^(Received RST_STREAM|Stream closed before sending status|Call cancelled$)/;
/** Bytes arrived that are not a valid gRPC response for the method. */
const MALFORMED = /^(Response message parsing error|No status information received|Received HTTP status code|Protocol error)/;
/** A size limit on this side: the response (or, for "Attempted to send", the request) was too large. */
const LOCAL_SIZE_LIMIT = /^(Received message larger than max|Received message that decompresses to a size larger than|Attempted to send message with a size larger than|Sent message larger than max)/;
/** The worker's server refused the request's metadata as too large (before any handler ran). */
const METADATA_REFUSED = /^received (initial |trailing )?metadata size exceeds/i;
/** grpc-js's own deadline timer fired (the worker's "Deadline Exceeded" differs in case and form). */
const LOCAL_DEADLINE = /^Deadline exceeded after /;
/** A load-balancing policy (round_robin for remote targets) prefixes its name to grpc-js's local failures. */
const LB_PREFIX = /^(round_robin|pick_first|weighted_round_robin|outlier_detection): /;

/** Whether grpc-js's `details` say the call never left this process (no connection, a refused stream, a closed channel). */
export function neverSent(code: number, details: string): boolean {
  const plain = details.replace(LB_PREFIX, "");
  return code === Status.UNAVAILABLE && NOT_DELIVERED.test(plain) && !NOT_HTTP2.test(plain);
}

/**
 * The one wording of a deadline that passed, on every transport (which limit it was is the
 * error's `timeoutKind`); no addresses or paths.
 */
export function deadlineDetails(facts: { deadlineAt: number; startedAt: number }): string {
  return `Deadline exceeded after ${Math.max(0, Math.round(facts.deadlineAt - facts.startedAt))} ms`;
}

function richStatusOf(metadata: Metadata | undefined): { message: string; details: StatusDetail[] } | undefined {
  const raw = metadata?.get(STATUS_DETAILS_KEY)[0];
  if (!raw || typeof raw === "string") return undefined;
  return decodeStatusDetails(raw);
}

/**
 * Turns a status received on any transport into an `RpcError`, placing it in one of the
 * categories of docs/errors.md from its code, the details grpc-js uses for local failures, the
 * worker's stopping marker and the deadline. The table is pure: test/grpc-status.test.ts covers it.
 */
export function rpcErrorFromStatus(status: ReceivedStatus, facts: CallFacts): RpcError {
  const code = status.code;
  const rich = richStatusOf(status.metadata);
  // A message HTTP/2 cannot carry as it is (edge spaces) arrives empty in grpc-message; the
  // worker then sends it exactly in grpc-status-details-bin (python-worker _status/wire.py).
  const details = (status.details || rich?.message || "").replace(LB_PREFIX, "");
  const common = {
    method: facts.method,
    workerId: facts.workerId,
    requestId: facts.requestId,
    idempotent: facts.idempotent,
    initialMetadata: userMetadata(facts.initialMetadata),
    trailingMetadata: userMetadata(status.metadata),
    statusDetails: rich?.details ?? [],
    cause: status,
  };
  if (!(code in Status) || code === Status.OK) {
    return new RpcError({ ...common, code: Status.INTERNAL, details: `invalid grpc-status ${String(code)} from worker: ${details}`, category: "protocol" });
  }
  if (status.metadata && status.metadata.get(WORKER_STOPPING_KEY).length > 0) {
    return new RpcError({ ...common, code: Status.UNAVAILABLE, details, category: "connection", reachedWorker: true });
  }
  // A DEADLINE_EXCEEDED before the deadline was raised by the servicer (e.g. a TimeoutError): a worker error.
  if (code === Status.DEADLINE_EXCEEDED && (LOCAL_DEADLINE.test(details) || Date.now() >= facts.deadlineAt - 1)) {
    return new RpcError({ ...common, code, details: deadlineDetails(facts), category: "timeout", timeoutKind: facts.deadlineKind });
  }
  if (code === Status.UNAVAILABLE && NOT_HTTP2.test(details)) {
    return new RpcError({ ...common, code: Status.INTERNAL, details: `the peer does not speak gRPC over HTTP/2: ${details}`, category: "protocol", reachedWorker: false });
  }
  if (neverSent(code, details)) {
    return new RpcError({ ...common, code, details, category: "connection", reachedWorker: false });
  }
  if (code === Status.RESOURCE_EXHAUSTED && LOCAL_SIZE_LIMIT.test(details)) {
    // A limit on this side: permanent (the same call fails the same way). Only "Attempted to send" never left.
    return new RpcError({ ...common, code, details, category: "protocol", reachedWorker: !details.startsWith("Attempted to send") });
  }
  if (code === Status.RESOURCE_EXHAUSTED && METADATA_REFUSED.test(details)) {
    return new RpcError({ ...common, code, details, category: "protocol", reachedWorker: false });
  }
  if (CONNECTION_BROKE.test(details) && code !== Status.INTERNAL) {
    return new RpcError({ ...common, code: Status.UNAVAILABLE, details, category: "connection", reachedWorker: true });
  }
  if (STREAM_CUT.test(details)) {
    // A worker being stopped cuts its streams; otherwise a peer that ends a stream without a status is broken.
    if (facts.targetStopping) return new RpcError({ ...common, code: Status.UNAVAILABLE, details, category: "connection", reachedWorker: true });
    return new RpcError({ ...common, code: Status.INTERNAL, details, category: "protocol" });
  }
  if (MALFORMED.test(details)) {
    return new RpcError({ ...common, code: Status.INTERNAL, details, category: "protocol" });
  }
  // A worker enforcing a kill switch refused the call before any servicer code ran: the same
  // kind of error as the pool's own refusal (an operator's decision, not retryable).
  if (code === Status.UNAVAILABLE && hasSwitchedOffDetail(common.statusDetails)) {
    return new RpcError({ ...common, code, details, category: "lifecycle", reachedWorker: true, retryable: false });
  }
  return new RpcError({ ...common, code: code as Status, details, category: "worker" });
}
