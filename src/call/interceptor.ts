import type { CallOptions } from "./call-options";
import type { UnaryMethod } from "./unary-method";

/** One unary call as middleware sees it. Middleware passes a (possibly changed) copy to `next`. */
export interface UnaryCall {
  /** The method: path, (de)serialisers, idempotency from the proto. */
  readonly method: UnaryMethod<unknown, unknown>;
  /** The request as the caller gave it (serialised only when sent). */
  readonly request: unknown;
  /** The caller's options. */
  readonly options: CallOptions;
  /** Workers this attempt should avoid when another is ready (a retry after a failure there). */
  readonly avoidWorkers?: ReadonlySet<string>;
  /**
   * Workers this attempt must not use at all (a worker circuit breaker's open workers); read when
   * the pool picks a worker, so a live set works. When every ready worker is excluded the call
   * waits as if none were ready.
   */
  readonly excludeWorkers?: WorkerFilter;
  /** Called by the pool with the worker's id at the moment it hands the attempt to a worker. */
  readonly onDispatch?: (workerId: string) => void;
  /**
   * Values an outer middleware hands to inner ones for this call (e.g. the call span that the
   * attempt spans are children of), keyed by the owner's symbol. Middleware that pass a copy
   * of the call on (`{ ...call, … }`) carry them along.
   */
  readonly values?: Readonly<Record<symbol, unknown>>;
}

/** A set of worker ids, as far as the pool needs one (a `Set<string>` is one). */
export interface WorkerFilter {
  has(workerId: string): boolean;
}

/** Sends the call on (to the next middleware, or to the pool). */
export type NextUnary = (call: UnaryCall) => Promise<unknown>;

/**
 * A client middleware: wraps every unary call, like connect-es interceptors or nice-grpc
 * middleware. Resilience policies (retry, circuit breaking, hedging, fallback) and
 * observability (metrics, tracing) are middleware, composed in order: the first in the
 * list is the outermost.
 */
export type UnaryMiddleware = (call: UnaryCall, next: NextUnary) => Promise<unknown>;

/** Composes middleware around `terminal`; the first middleware runs first. */
export function composeMiddleware(middleware: readonly UnaryMiddleware[], terminal: NextUnary): NextUnary {
  let next = terminal;
  for (let i = middleware.length - 1; i >= 0; i--) {
    const mw = middleware[i];
    const inner = next;
    next = (call) => mw(call, inner);
  }
  return next;
}
