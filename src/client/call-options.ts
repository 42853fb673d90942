import type { Call, Interceptor, Next } from "../call/interceptor";
import type { BaseCallOptions } from "../call/call-options";
import type { ResilienceCallOptions } from "../resilience/pool-resilience";

/**
 * The options of every call through a `WorkerPool` or `RemotePool` client: the base options
 * plus those of the pools' built-in resilience interceptors (`retry`, `hedge`, `fallback`).
 */
export type CallOptions = BaseCallOptions & ResilienceCallOptions;

/** An interceptor that may read the pools' built-in call options (the type of `WorkerPoolOptions.middleware`). */
export type Middleware = Interceptor<ResilienceCallOptions>;

/** @deprecated Since interceptors cover every kind of call: use `Middleware` (or `Interceptor`). */
export type UnaryMiddleware = Middleware;

/** @deprecated Use `Call` (its `kind` says which kind of call it is). */
export type UnaryCall = Call<ResilienceCallOptions>;

/** @deprecated Use `Next`. */
export type NextUnary = Next;
