import { mergeCallOptions, type CallDefaults } from "../call/call-defaults";
import type { CallOptions } from "../call/call-options";
import type { RequestOf, ResponseOf, ServiceDefinition } from "../call/definition";
import type { UnaryMiddleware } from "../call/interceptor";
import { streamMethodOf, type StreamMethod } from "../call/stream-method";
import { unaryMethodOf, type UnaryMethod } from "../call/unary-method";

/** Runs one unary call; the pool provides it (with its middleware applied). */
export type UnaryInvoker = <Res>(method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions) => Promise<Res>;

/** A stream of requests: any sync or async iterable (an array, a generator, a Readable in object mode). */
export type RequestStream<T> = AsyncIterable<T> | Iterable<T>;

/** Runs streaming calls; the pool provides them. */
export interface StreamInvoker {
  serverStream<Res>(method: StreamMethod<unknown, Res>, request: unknown, options?: CallOptions): AsyncIterable<Res>;
  clientStream<Res>(method: StreamMethod<unknown, Res>, requests: RequestStream<unknown>, options?: CallOptions): Promise<Res>;
  bidiStream<Res>(method: StreamMethod<unknown, Res>, requests: RequestStream<unknown>, options?: CallOptions): AsyncIterable<Res>;
}

/** Options for `pool.client(definition, options)`. */
export interface ClientOptions {
  /** Middleware for this client's unary calls, inside the pool's own middleware. */
  middleware?: readonly UnaryMiddleware[];
  /** Options every unary call of this client starts from (e.g. `retry`, `timeoutMs`); the call's own options win. */
  defaults?: CallDefaults;
  /** Per-method defaults by the client's method name (e.g. `{ quote: { fallback, retry } }`), over `defaults`. */
  methods?: Readonly<Record<string, CallDefaults>>;
}

/** The key under which a client's unary method function carries its `UnaryMethod` (for `pool.batch`). */
export const UNARY_METHOD = Symbol.for("procgrpc.unaryMethod");

/** The `UnaryMethod` behind a typed client's method function, if it is one. */
export function unaryMethodOfCall(fn: unknown): UnaryMethod<unknown, unknown> | undefined {
  return typeof fn === "function" ? ((fn as unknown as Record<symbol, unknown>)[UNARY_METHOD] as UnaryMethod<unknown, unknown> | undefined) : undefined;
}

/** The function a client exposes for one method, by streaming kind. */
export type MethodCall<M> = M extends { requestStream: true }
  ? M extends { responseStream: true }
    ? (requests: RequestStream<RequestOf<M>>, options?: CallOptions) => AsyncIterable<ResponseOf<M>>
    : (requests: RequestStream<RequestOf<M>>, options?: CallOptions) => Promise<ResponseOf<M>>
  : M extends { responseStream: true }
    ? (request: RequestOf<M>, options?: CallOptions) => AsyncIterable<ResponseOf<M>>
    : (request: RequestOf<M>, options?: CallOptions) => Promise<ResponseOf<M>>;

/**
 * A typed client for a generated service definition: unary methods return a Promise of the
 * response; server-streaming and bidirectional methods an AsyncIterable of responses;
 * client-streaming and bidirectional methods take an (async) iterable of requests.
 * Requests may give any subset of their fields.
 */
export type Client<D extends ServiceDefinition> = {
  [K in keyof D["methods"]]: MethodCall<D["methods"][K]>;
};

/** Builds a typed client; method descriptions are built once, here. */
export function createTypedClient<D extends ServiceDefinition>(definition: D, invoke: UnaryInvoker, streams: StreamInvoker, options: ClientOptions = {}): Client<D> {
  const client: Record<string, unknown> = {};
  for (const key of Object.keys(options.methods ?? {})) {
    const m = definition.methods[key];
    if (!m || m.requestStream || m.responseStream) {
      throw new TypeError(`client(${definition.fullName}): methods.${key} is not a unary method of the service; use one of ${Object.keys(definition.methods).filter((k) => !definition.methods[k].requestStream && !definition.methods[k].responseStream).join(", ")}`);
    }
  }
  for (const [key, method] of Object.entries(definition.methods)) {
    if (!method.requestStream && !method.responseStream) {
      const unary = unaryMethodOf(definition.fullName, method);
      const defaults = options.defaults || options.methods?.[key] ? mergeCallOptions(options.defaults, options.methods?.[key]) : undefined;
      const fn = defaults
        ? (request: unknown, callOptions?: CallOptions) => invoke(unary, request, mergeCallOptions(defaults, callOptions))
        : (request: unknown, callOptions?: CallOptions) => invoke(unary, request, callOptions);
      Object.defineProperty(fn, UNARY_METHOD, { value: unary });
      client[key] = fn;
      continue;
    }
    const stream = streamMethodOf(definition.fullName, method);
    if (method.requestStream && method.responseStream) {
      client[key] = (requests: RequestStream<unknown>, options?: CallOptions) => streams.bidiStream(stream, requests, options);
    } else if (method.requestStream) {
      client[key] = (requests: RequestStream<unknown>, options?: CallOptions) => streams.clientStream(stream, requests, options);
    } else {
      client[key] = (request: unknown, options?: CallOptions) => streams.serverStream(stream, request, options);
    }
  }
  return client as Client<D>;
}
