import type { Metadata } from "@grpc/grpc-js";
import type { MetadataInit } from "../core/metadata";

export type { MetadataInit } from "../core/metadata";

/**
 * The options every call takes, whatever interceptors the pool has. Interceptors declare the
 * options they read themselves (e.g. resilience's `retry`, `hedge`, `fallback`), and clients
 * accept the union (nice-grpc's CallOptionsExt pattern).
 */
export interface BaseCallOptions {
  /**
   * Milliseconds the call may take, from now (`timeoutKind: "per-call"`). With `deadline`, the
   * earlier one applies; either replaces the pool's `requestTimeoutMs`, longer or shorter.
   * Must be a finite number >= 0 (a `RangeError` otherwise); 0 fails at once with DEADLINE_EXCEEDED.
   */
  timeoutMs?: number;
  /**
   * Absolute deadline: a `Date`, or epoch milliseconds (`timeoutKind: "context"`). Unlike
   * nice-grpc's deadline middleware, a number is never "milliseconds from now" (that is
   * `timeoutMs`); a number before 2001 is refused with a `RangeError`. A deadline in the past
   * fails at once with DEADLINE_EXCEEDED without reaching a worker.
   */
  deadline?: Date | number;
  /** Cancels the call; aborting with a `TimeoutError` reason (e.g. `AbortSignal.timeout`) counts as a deadline. */
  signal?: AbortSignal;
  /** Metadata sent with the request; Python reads it with `context.invocation_metadata()`. */
  metadata?: MetadataInit;
  /** Request id sent as `x-request-id`, one per logical call (shared by its retries and hedges); generated when omitted. */
  requestId?: string;
  /** Declares the call safe to repeat even if the proto does not mark the method idempotent. */
  idempotent?: boolean;
  /** Receives the response headers the worker sent (empty when it sent none), before the response or the error. */
  onHeader?: (metadata: Metadata) => void;
  /** Receives the trailers the worker sent (on success and on error). */
  onTrailer?: (metadata: Metadata) => void;
}

/** No extra call options (the default of the `Ext` type parameters). */
export type NoExtraOptions = Record<never, never>;
