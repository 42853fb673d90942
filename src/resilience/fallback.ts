import type { Interceptor } from "../call/interceptor";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { Logger } from "../core/logger";
import { isCircuitOpen } from "./circuit-open-error";
import type { ResilienceEvents } from "./events";

/** Codes a fallback may answer for: the worker side is in trouble, not the caller. */
const FALLBACK_CODES: ReadonlySet<Status> = new Set([Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.ABORTED, Status.DEADLINE_EXCEEDED]);

/** A fallback: receives the final error and the request, returns (or resolves to) the response to use instead. */
export type FallbackFunction<Req = unknown, Res = unknown> = (error: RpcError, request: Req) => Res | Promise<Res>;

/** The call option the fallback interceptor reads. */
export interface FallbackCallOptions {
  /** Returns a degraded response when the call fails with a retryable error or an open circuit; every use is logged and counted. */
  fallback?: FallbackFunction;
}

/** Options of `fallbackMiddleware`. */
export interface FallbackMiddlewareOptions {
  /** Fallbacks per method path (`/pkg.Service/Method`); a call's own `fallback` option wins. */
  methods?: Readonly<Record<string, FallbackFunction>>;
  /** Every use is logged here at `warn`. */
  logger?: Logger;
  /** Every use is reported here as a `fallback` event (and counted). */
  events?: ResilienceEvents;
}

/**
 * True when a fallback may replace `err`: an open circuit, or UNAVAILABLE / RESOURCE_EXHAUSTED /
 * ABORTED / DEADLINE_EXCEEDED (whatever the retry policy did). Caller mistakes, bugs and
 * cancellations are never hidden behind a degraded answer.
 */
export function fallbackApplies(err: RpcError): boolean {
  if (err.category === "cancelled" || err.category === "protocol") return false;
  return isCircuitOpen(err) || FALLBACK_CODES.has(err.code());
}

/**
 * Graceful degradation: when a call fails in a way `fallbackApplies` accepts and a fallback is
 * set (per call, per client method, or per method path here), its result is returned instead.
 * Every use is logged at `warn` and reported as a `fallback` event — never silent. Unary calls only.
 */
export function fallbackMiddleware(options: FallbackMiddlewareOptions = {}): Interceptor<FallbackCallOptions> {
  const { methods = {}, logger, events } = options;
  return async (call, next) => {
    if (call.kind !== "unary") return next(call);
    try {
      return await next(call);
    } catch (thrown) {
      const fallback = call.options.fallback ?? methods[call.method.path];
      if (!fallback) throw thrown;
      const err = RpcError.from(thrown, call.method.path);
      if (!fallbackApplies(err)) throw thrown;
      logger?.warn(
        { method: call.method.path, code: err.code(), details: err.details(), category: err.category, attempts: err.attempts, requestId: err.requestId },
        "call failed; answering with its fallback",
      );
      events?.report("fallback", { method: call.method.path, error: err });
      return fallback(err, call.request);
    }
  };
}
