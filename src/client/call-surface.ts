import type { CallOptions } from "../call/call-options";
import type { ServiceDefinition } from "../call/definition";
import { createDynamicClient, type DynamicClient, type DynamicClientOptions } from "./dynamic-client";
import { composeMiddleware, type NextUnary } from "../call/interceptor";
import { createTypedClient, unaryMethodOfCall, type Client, type ClientOptions, type StreamInvoker } from "./typed-client";
import type { UnaryMethod } from "../call/unary-method";
import { runBatch, type BatchOptions, type BatchResult } from "../resilience/batch";

/**
 * How a pool sends calls: `send` is its middleware chain around its own dispatch (unary), and
 * `streams` runs streaming calls. `WorkerPool` and `RemotePool` differ only in these two; the
 * clients, dynamic clients and batches they hand out are built here, the same way for both.
 */
export interface CallSurface {
  readonly send: NextUnary;
  readonly streams: StreamInvoker;
}

/** A typed client over `surface`; the client's own middleware goes inside the pool's. */
export function typedClientOn<D extends ServiceDefinition>(surface: CallSurface, definition: D, options: ClientOptions = {}): Client<D> {
  const send = options.middleware?.length ? composeMiddleware(options.middleware, surface.send) : surface.send;
  return createTypedClient(definition, (method, request, callOptions) => send({ method, request, options: callOptions ?? {} }) as never, surface.streams, options);
}

/** A dynamic (no codegen) client over `surface`. */
export function dynamicClientOn(surface: CallSurface, protoPath: string, serviceName: string, options?: DynamicClientOptions): DynamicClient {
  return createDynamicClient(protoPath, serviceName, (method, request, callOptions) => surface.send({ method, request, options: callOptions ?? {} }) as never, options);
}

/** One unary call through `surface`'s middleware. */
export function unaryOn<Res>(surface: CallSurface, method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions): Promise<Res> {
  return surface.send({ method, request, options: options ?? {} }) as Promise<Res>;
}

/** `pool.batch(...)` over `surface`: a typed client's method, or a `UnaryMethod` sent through the middleware. */
export function batchOn<Req, Res>(surface: CallSurface, method: ((request: Req, options?: CallOptions) => Promise<Res>) | UnaryMethod<unknown, Res>, requests: readonly Req[], options?: BatchOptions): Promise<BatchResult<Res>> {
  if (typeof method === "function") return runBatch(method, unaryMethodOfCall(method), requests, options);
  return runBatch((request, callOptions) => unaryOn(surface, method, request, callOptions), method, requests, options);
}
