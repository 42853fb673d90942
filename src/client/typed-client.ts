import type { CallOptions } from "./call-options";
import type { RequestOf, ResponseOf, ServiceDefinition, UnaryMethodKeys } from "./definition";
import type { UnaryMiddleware } from "./middleware";
import { unaryMethodOf, type UnaryMethod } from "./unary-method";

/** Runs one unary call; the pool provides it (with its middleware applied). */
export type UnaryInvoker = <Res>(method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions) => Promise<Res>;

/** Options for `pool.client(definition, options)`. */
export interface ClientOptions {
  /** Middleware for this client's calls, inside the pool's own middleware. */
  middleware?: readonly UnaryMiddleware[];
}

/**
 * A typed client for a generated service definition: one method per unary RPC, taking the
 * request (any subset of its fields) and resolving with the response message.
 */
export type Client<D extends ServiceDefinition> = {
  [K in UnaryMethodKeys<D>]: (request: RequestOf<D["methods"][K]>, options?: CallOptions) => Promise<ResponseOf<D["methods"][K]>>;
};

/** Builds a typed client whose methods call `invoke`; method descriptions are built once, here. */
export function createTypedClient<D extends ServiceDefinition>(definition: D, invoke: UnaryInvoker): Client<D> {
  const client: Record<string, (request: unknown, options?: CallOptions) => Promise<unknown>> = {};
  for (const [key, method] of Object.entries(definition.methods)) {
    if (method.requestStream || method.responseStream) continue;
    const unary = unaryMethodOf(definition.fullName, method);
    client[key] = (request, options) => invoke(unary, request, options);
  }
  return client as Client<D>;
}
