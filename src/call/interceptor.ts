import type { BaseCallOptions, NoExtraOptions } from "./call-options";
import type { AnyMethod, CallKind } from "./method";

/** A set of worker ids, as far as the pool needs one (a `Set<string>` is one). */
export interface WorkerFilter {
  has(workerId: string): boolean;
}

/**
 * One call as interceptors see it, for every kind of call. Interceptors pass a (possibly
 * changed) copy to `next`.
 *
 * What `next` resolves with depends on `kind`:
 * - `unary`, `client-stream`: the response message;
 * - `server-stream`, `bidi-stream`: an `AsyncIterable` of response messages (errors after the
 *   stream started come out of the iteration).
 */
export interface Call<Ext extends object = NoExtraOptions> {
  readonly kind: CallKind;
  /** The method: path, (de)serialisers, idempotency from the proto. */
  readonly method: AnyMethod;
  /**
   * The request as the caller gave it: the message for `unary` and `server-stream` calls; an
   * (async) iterable of messages for `client-stream` and `bidi-stream` calls. Serialised only when sent.
   */
  readonly request: unknown;
  /** The caller's options (plus those of interceptors that declare `Ext`). */
  readonly options: BaseCallOptions & Ext;
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
   * Values an outer interceptor hands to inner ones for this call (e.g. the call span that the
   * attempt spans are children of), keyed by the owner's symbol. Interceptors that pass a copy
   * of the call on (`{ ...call, … }`) carry them along.
   */
  readonly values?: Readonly<Record<symbol, unknown>>;
}

/** Sends the call on (to the next interceptor, or to the pool). */
export type Next = (call: Call) => Promise<unknown>;

/**
 * An interceptor: wraps every call of every kind, like connect-es interceptors or nice-grpc
 * middleware. `Ext` declares the call options it reads (e.g. `{ retry?: … }`); clients built
 * with it accept them. Resilience policies and observability are interceptors, composed in
 * order: the first in the list is the outermost.
 */
export type Interceptor<Ext extends object = NoExtraOptions> = (call: Call<Ext>, next: Next) => Promise<unknown>;

/** Composes interceptors around `terminal`; the first interceptor runs first. */
export function composeInterceptors(interceptors: readonly Interceptor<never>[], terminal: Next): Next {
  let next = terminal;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const interceptor = interceptors[i] as unknown as Interceptor;
    const inner = next;
    next = (call) => interceptor(call, inner);
  }
  return next;
}

/** True when `next` resolves with an `AsyncIterable` of responses for this call. */
export function respondsWithStream(call: Pick<Call, "kind">): boolean {
  return call.kind === "server-stream" || call.kind === "bidi-stream";
}
