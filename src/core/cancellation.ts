import { RpcError } from "./rpc-error";
import { Status } from "./status";

/** What an error about a cancelled call says about the call, beside the signal's reason. */
export interface CancelledCallFacts {
  method?: string;
  workerId?: string;
  requestId?: string;
  idempotent: boolean;
  reachedWorker?: boolean;
}

/**
 * Why the caller's signal fired, as an RpcError: a `TimeoutError` reason (e.g.
 * `AbortSignal.timeout(ms)`) is a deadline (category `timeout`, kind `context`); anything else
 * is a cancellation (category `cancelled`).
 */
export function errorFromAbort(signal: AbortSignal, facts: CancelledCallFacts): RpcError {
  // Duck-typed, not instanceof: AbortSignal.timeout's DOMException may come from another realm
  // (a vm context such as Jest's), where it is not an instance of this realm's Error.
  const reason = signal.reason as { name?: unknown; message?: unknown } | undefined;
  const isTimeout = typeof reason === "object" && reason !== null && reason.name === "TimeoutError";
  const why = typeof reason === "object" && reason !== null && typeof reason.message === "string" && reason.message ? `: ${reason.message}` : "";
  return new RpcError({
    code: isTimeout ? Status.DEADLINE_EXCEEDED : Status.CANCELLED,
    details: isTimeout ? "deadline exceeded: the caller's signal timed out" : `call cancelled by the caller${why}`,
    category: isTimeout ? "timeout" : "cancelled",
    timeoutKind: isTimeout ? "context" : undefined,
    cause: reason,
    ...facts,
  });
}
