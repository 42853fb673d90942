import { mergeCallOptions, type CallDefaults } from "../call/call-defaults";
import { checkDeadlineOptions } from "../core/deadline";
import type { BaseCallOptions, NoExtraOptions } from "../call/call-options";
import type { RequestOf, ResponseOf, ServiceDefinition } from "../call/definition";
import type { Interceptor } from "../call/interceptor";
import { callKindOf, methodOf, type AnyMethod, type CallKind, type UnaryMethod } from "../call/method";
import type { CallOptions } from "./call-options";
import { responseStream } from "./response-stream";

/** A stream of requests: any sync or async iterable (an array, a generator, a `pushable()`, a Readable in object mode). */
export type RequestStream<T> = AsyncIterable<T> | Iterable<T>;

/**
 * Starts calls for clients (the pool provides it): for `unary` and `client-stream` calls it
 * resolves with the response; for `server-stream` and `bidi-stream` calls with an async
 * iterable of responses.
 */
export interface CallInvoker {
  invoke(kind: CallKind, method: AnyMethod, request: unknown, options: BaseCallOptions | undefined): Promise<unknown>;
}

/** Options for `pool.client(definition, options)`. */
export interface ClientOptions<D extends ServiceDefinition = ServiceDefinition, Ext extends object = NoExtraOptions> {
  /** Interceptors for this client's calls (every kind), inside the pool's own. Their declared options join the client's call options. */
  interceptors?: readonly Interceptor<Ext>[];
  /** The same as `interceptors` (the name before interceptors covered streams); both may be given, `middleware` first. */
  middleware?: readonly Interceptor<Ext>[];
  /** Options every call of this client starts from (e.g. `retry`, `timeoutMs`); the call's own options win. */
  defaults?: CallDefaults<CallOptions & Ext>;
  /** Per-method defaults by the client's method name (`{ quote: { fallback, retry } }`), over `defaults`; an unknown name is a type error. */
  methods?: { readonly [K in keyof D["methods"]]?: CallDefaults<CallOptions & Ext> };
}

/** The key under which a client's unary method function carries its `UnaryMethod` (for `pool.batch`). */
export const UNARY_METHOD = Symbol.for("procgrpc.unaryMethod");

/** The `UnaryMethod` behind a typed client's method function, if it is one. */
export function unaryMethodOfCall(fn: unknown): UnaryMethod<unknown, unknown> | undefined {
  return typeof fn === "function" ? ((fn as unknown as Record<symbol, unknown>)[UNARY_METHOD] as UnaryMethod<unknown, unknown> | undefined) : undefined;
}

/** The function a client exposes for one method, by streaming kind, taking call options `O`. */
export type MethodCall<M, O = CallOptions> = M extends { requestStream: true }
  ? M extends { responseStream: true }
    ? (requests: RequestStream<RequestOf<M>>, options?: O) => AsyncIterable<ResponseOf<M>>
    : (requests: RequestStream<RequestOf<M>>, options?: O) => Promise<ResponseOf<M>>
  : M extends { responseStream: true }
    ? (request: RequestOf<M>, options?: O) => AsyncIterable<ResponseOf<M>>
    : (request: RequestOf<M>, options?: O) => Promise<ResponseOf<M>>;

/**
 * A typed client for a generated service definition: unary methods return a Promise of the
 * response; server-streaming and bidirectional methods an AsyncIterable of responses;
 * client-streaming and bidirectional methods take an (async) iterable of requests. Requests may
 * give any subset of their fields. `O` is the call options type (the pool's, plus those of the
 * client's interceptors).
 */
export type Client<D extends ServiceDefinition, O = CallOptions> = {
  [K in keyof D["methods"]]: MethodCall<D["methods"][K], O>;
};

/**
 * Builds the call function of one method of any kind: unary and client-stream calls return the
 * promise of the response; server streams start at the first `next()`; bidirectional calls
 * start at once (so a push-style writer can send before anyone reads).
 */
export function methodCaller(invoker: CallInvoker, method: AnyMethod, defaults: BaseCallOptions | undefined): (request: unknown, options?: BaseCallOptions) => unknown {
  const kind = callKindOf(method);
  const optionsOf = (options: BaseCallOptions | undefined): BaseCallOptions | undefined => (defaults ? mergeCallOptions(defaults, options) : options);
  if (kind === "unary" || kind === "client-stream") {
    return (request, options) => invoker.invoke(kind, method, request, optionsOf(options));
  }
  return (request, options) => {
    const merged = optionsOf(options);
    checkDeadlineOptions(merged); // a RangeError at the call site, not at the first next()
    return responseStream((signal) => invoker.invoke(kind, method, request, { ...merged, signal }) as Promise<AsyncIterable<unknown>>, merged?.signal, kind === "bidi-stream");
  };
}

/**
 * Builds a typed client; method descriptors are built once, here. `invoker` already runs the
 * client's interceptors (`clientInterceptors(options)`).
 */
export function createTypedClient<D extends ServiceDefinition, Ext extends object>(definition: D, invoker: CallInvoker, options: ClientOptions<D, Ext> = {}): Client<D, CallOptions & Ext> {
  const perMethod = (options.methods ?? {}) as Readonly<Record<string, BaseCallOptions | undefined>>;
  for (const key of Object.keys(perMethod)) {
    if (!(key in definition.methods)) {
      throw new TypeError(`client(${definition.fullName}): methods.${key} is not a method of the service; it has ${Object.keys(definition.methods).join(", ")}`);
    }
  }
  const client: Record<string, unknown> = {};
  for (const [key, definitionOfMethod] of Object.entries(definition.methods)) {
    const method = methodOf(definition.fullName, definitionOfMethod);
    const defaults = options.defaults || perMethod[key] ? mergeCallOptions<BaseCallOptions>(options.defaults as BaseCallOptions | undefined, perMethod[key]) : undefined;
    const fn = methodCaller(invoker, method, defaults);
    if (callKindOf(method) === "unary") Object.defineProperty(fn, UNARY_METHOD, { value: method });
    client[key] = fn;
  }
  return client as Client<D, CallOptions & Ext>;
}

/** The interceptors a client adds inside the pool's: `middleware` first, then `interceptors`. */
export function clientInterceptors(options: { interceptors?: readonly Interceptor<never>[]; middleware?: readonly Interceptor<never>[] } | undefined): readonly Interceptor<never>[] {
  return [...(options?.middleware ?? []), ...(options?.interceptors ?? [])] as readonly Interceptor<never>[];
}
