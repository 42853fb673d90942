import type { CallOptions } from "./call-options";
import type { RequestOf, ResponseOf, ServiceDefinition } from "./definition";
import type { UnaryMiddleware } from "./middleware";
import { streamMethodOf, type StreamMethod } from "./stream-method";
import { unaryMethodOf, type UnaryMethod } from "./unary-method";

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
export function createTypedClient<D extends ServiceDefinition>(definition: D, invoke: UnaryInvoker, streams: StreamInvoker): Client<D> {
  const client: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(definition.methods)) {
    if (!method.requestStream && !method.responseStream) {
      const unary = unaryMethodOf(definition.fullName, method);
      client[key] = (request: unknown, options?: CallOptions) => invoke(unary, request, options);
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
