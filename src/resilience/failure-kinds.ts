import type { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";

/** Codes a servicer sends when it (not the caller) is in trouble. */
const SERVER_TROUBLE: ReadonlySet<Status> = new Set([
  Status.UNAVAILABLE,
  Status.RESOURCE_EXHAUSTED,
  Status.ABORTED,
  Status.DEADLINE_EXCEEDED,
  Status.INTERNAL,
  Status.UNKNOWN,
  Status.DATA_LOSS,
]);

/**
 * What a worker circuit counts as a failure: a connection that could not be made or broke, or a
 * timeout, on that worker. Permanent errors (INVALID_ARGUMENT, NOT_FOUND, …) mean the worker
 * answered, so they count as successes.
 */
export function countsAgainstWorker(err: RpcError): boolean {
  return err.category === "connection" || (err.category === "timeout" && err.reachedWorker);
}

/**
 * What a method circuit counts as a failure: the worker side failing (connection, timeout, or a
 * server-trouble status), never the caller's mistakes (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, …),
 * cancellations, or the pool's own lifecycle.
 */
export function countsAgainstMethod(err: RpcError): boolean {
  if (err.category === "connection" || err.category === "timeout") return true;
  return err.category === "worker" && SERVER_TROUBLE.has(err.code());
}
