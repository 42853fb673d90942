import type { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { BackoffOptions } from "./backoff";
import type { DelaySource, RetryEvent, RetryStopReason } from "./events";

/** Retry settings, on the pool (`retry`), per client (`defaults.retry`) or per call (`retry`). */
export interface RetryOptions extends BackoffOptions {
  /** Attempts in all, the first included. Default 3. */
  maxAttempts?: number;
  /**
   * Status codes that may be retried (the safety rule still applies: a call that may have run is
   * repeated only when idempotent). Default `RETRY_CODES`: UNAVAILABLE, RESOURCE_EXHAUSTED,
   * ABORTED, and DEADLINE_EXCEEDED of one attempt's own timeout.
   */
  retryableCodes?: readonly Status[];
  /** Deadline of each attempt; the call's own deadline still spans every attempt. Default: none. */
  perAttemptTimeoutMs?: number;
  /** Called before each retry's delay (after the `retry` event). */
  onRetry?: (event: RetryEvent) => void;
}

/** The call option the retry interceptor reads: this call's retry policy, over the client's and the pool's. */
export interface RetryCallOptions {
  /** Retry policy for this call, over the client's and pool's (`false`: no retries; `true`: the defaults). See docs/resilience.md. */
  retry?: RetryOptions | boolean;
}

/** Default `maxAttempts`. */
export const DEFAULT_MAX_ATTEMPTS = 3;

/** The codes a retry policy may repeat; DEADLINE_EXCEEDED only when a single attempt's timeout fired. */
export const RETRY_CODES: ReadonlySet<Status> = new Set([Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.ABORTED, Status.DEADLINE_EXCEEDED]);

/** The metadata key of gRPC's server pushback (A6): milliseconds to wait; negative or garbage means stop. */
export const PUSHBACK_KEY = "grpc-retry-pushback-ms";

/** Whether a failed attempt may be repeated, or why not. */
export type RetryVerdict = { retry: true } | { retry: false; reason: RetryStopReason };

/**
 * The retry safety rule (docs/resilience.md):
 * - only the retryable codes are repeated (by default UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED,
 *   and DEADLINE_EXCEEDED of one attempt's own timeout, the call's overall deadline not yet passed);
 * - a call that never reached a worker (no ready worker, connect refused, queue full) may always be repeated;
 * - a status the servicer itself chose (category `worker`) is its statement that the call may be repeated;
 * - a call that may have run (connection dropped mid-call, attempt timeout) is repeated only when
 *   the method is idempotent (proto `idempotency_level`, or `idempotent: true` on the call).
 */
export function retryVerdict(err: RpcError, call: { idempotent: boolean; overallDeadlineAt: number | undefined; now: number; retryableCodes?: ReadonlySet<Status> }): RetryVerdict {
  if (err.category === "cancelled") return { retry: false, reason: "cancelled" };
  const code = err.code();
  if (!(call.retryableCodes ?? RETRY_CODES).has(code)) return { retry: false, reason: "not-retryable" };
  if (code === Status.DEADLINE_EXCEEDED && call.overallDeadlineAt !== undefined && call.now >= call.overallDeadlineAt - 1) {
    return { retry: false, reason: "deadline" };
  }
  // For these categories `retryable` does not depend on idempotency, so false is a deliberate
  // override (e.g. an open circuit says "do not hammer me").
  if ((err.category === "worker" || err.category === "lifecycle") && !err.retryable) return { retry: false, reason: "not-retryable" };
  if (err.category === "protocol") return { retry: false, reason: "not-retryable" };
  const mayHaveRun = err.reachedWorker && err.category !== "worker" && err.category !== "lifecycle";
  if (mayHaveRun && !call.idempotent) return { retry: false, reason: "unsafe" };
  return { retry: true };
}

/** A delay the worker asked for: from `grpc-retry-pushback-ms` (first) or a RetryInfo detail. */
export type ServerDelay = { stop: true } | { stop: false; delayMs: number; source: DelaySource };

/** Reads the worker's retry advice from the error's trailers and status details, if any. */
export function serverDelay(err: RpcError): ServerDelay | undefined {
  const pushback = err.trailingMetadata().get(PUSHBACK_KEY)[0];
  if (pushback !== undefined) {
    const text = String(pushback).trim();
    const ms = /^-?\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(ms) || ms < 0) return { stop: true };
    return { stop: false, delayMs: ms, source: "pushback" };
  }
  const info = err.findDetail("RetryInfo");
  if (info?.retryDelay) {
    const ms = Number(info.retryDelay.seconds) * 1000 + Math.round(info.retryDelay.nanos / 1e6);
    if (Number.isFinite(ms) && ms >= 0) return { stop: false, delayMs: ms, source: "retry-info" };
  }
  return undefined;
}
