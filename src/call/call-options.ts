import type { Metadata } from "@grpc/grpc-js";
import type { RpcError } from "../core/rpc-error";
import type { HedgeOptions } from "../resilience/hedging";
import type { RetryOptions } from "../resilience/retry-policy";

/** Metadata to send: a grpc-js `Metadata`, or a plain object (`-bin` keys take Buffers). */
export type MetadataInit = Metadata | Readonly<Record<string, string | Buffer | readonly (string | Buffer)[]>>;

/** Options for one call. The effective deadline is the earliest of `deadline`, `timeoutMs` and the pool's `requestTimeoutMs`. */
export interface CallOptions {
  /** Milliseconds the call may take, from now (`timeoutKind: "per-call"` when it fires). */
  timeoutMs?: number;
  /** Absolute deadline (`timeoutKind: "context"` when it passes). */
  deadline?: Date | number;
  /** Cancels the call; aborting with a `TimeoutError` (e.g. `AbortSignal.timeout`) counts as a deadline. */
  signal?: AbortSignal;
  /** Metadata sent with the request; Python reads it with `context.invocation_metadata()`. */
  metadata?: MetadataInit;
  /** Request id sent as `x-request-id`; one is generated when omitted. */
  requestId?: string;
  /** Declares the call safe to repeat even if the proto does not mark the method idempotent. */
  idempotent?: boolean;
  /** Receives the response headers the worker sent. */
  onHeader?: (metadata: Metadata) => void;
  /** Receives the trailers the worker sent (on success and on error). */
  onTrailer?: (metadata: Metadata) => void;
  /** Retry policy for this call, over the client's and pool's (`false`: no retries; `true`: the defaults). See docs/resilience.md. */
  retry?: RetryOptions | boolean;
  /** Hedging for this call (`false`: none; `true`: the pool's settings). Sending copies is only safe for calls without side effects. */
  hedge?: HedgeOptions | boolean;
  /** Returns a degraded response when the call fails with a retryable error or an open circuit; every use is logged and counted. */
  fallback?: FallbackFunction;
}

/** A fallback: receives the final error and the request, returns (or resolves to) the response to use instead. */
export type FallbackFunction<Req = unknown, Res = unknown> = (error: RpcError, request: Req) => Res | Promise<Res>;
