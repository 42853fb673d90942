import type { ErrorCategory } from "./categories";
import { Status } from "./status";

/** Codes a worker may send that mean "transient, try again later". */
const TRANSIENT_WORKER_CODES: ReadonlySet<Status> = new Set([Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.ABORTED]);

/**
 * The error-model table (docs/errors.md): whether a failure may be retried and whether it counts
 * toward an SLO, from its category, code, the method's idempotency and whether it reached a worker.
 */
export function retryPolicyFor(
  category: ErrorCategory,
  code: Status,
  call: { idempotent: boolean; reachedWorker: boolean },
): { retryable: boolean; countsTowardSlo: boolean } {
  switch (category) {
    case "timeout":
      return { retryable: call.idempotent, countsTowardSlo: true };
    case "connection":
      return { retryable: !call.reachedWorker || call.idempotent, countsTowardSlo: true };
    case "protocol":
      return { retryable: false, countsTowardSlo: false };
    case "worker":
      return { retryable: TRANSIENT_WORKER_CODES.has(code), countsTowardSlo: true };
    case "lifecycle":
      // Not started / shut down is final; no ready worker or a full queue passes with time.
      return { retryable: code === Status.UNAVAILABLE || code === Status.RESOURCE_EXHAUSTED, countsTowardSlo: false };
    case "cancelled":
      return { retryable: false, countsTowardSlo: false };
  }
}
