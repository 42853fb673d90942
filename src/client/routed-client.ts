import type { ServiceDefinition } from "../call/definition";
import type { Client, ClientOptions } from "./typed-client";

/** Anything that hands out typed clients: a `WorkerPool`, a `RemotePool`. */
export interface ClientSource {
  client<D extends ServiceDefinition>(definition: D, options?: ClientOptions<D>): Client<D>;
}

/** Which pool serves which method of a service: `methods` by the client's method name, `default` for the rest. */
export interface Routes<D extends ServiceDefinition> {
  default: ClientSource;
  methods?: Partial<Record<keyof D["methods"] & string, ClientSource>>;
}

/**
 * One typed client whose methods go to different pools, e.g. latency-critical methods to local
 * workers and heavy ones to remote workers:
 * `routedClient(ScoringDefinition, { default: local, methods: { train: remote } })`. Each pool
 * applies its own middleware, resilience and deadlines; `options` is given to every pool's client.
 */
export function routedClient<D extends ServiceDefinition>(definition: D, routes: Routes<D>, options?: ClientOptions<D>): Client<D> {
  const methods = routes.methods ?? {};
  for (const key of Object.keys(methods)) {
    if (!(key in definition.methods)) {
      throw new TypeError(`routedClient(${definition.fullName}): routes.methods.${key} is not a method of the service; it has ${Object.keys(definition.methods).join(", ")}`);
    }
  }
  const clients = new Map<ClientSource, Client<D>>();
  const clientOf = (source: ClientSource): Client<D> => {
    let c = clients.get(source);
    if (!c) {
      c = source.client(definition, options);
      clients.set(source, c);
    }
    return c;
  };
  const routed: Record<string, unknown> = {};
  for (const key of Object.keys(definition.methods)) {
    const source = (methods as Record<string, ClientSource | undefined>)[key] ?? routes.default;
    routed[key] = (clientOf(source) as Record<string, unknown>)[key];
  }
  return routed as Client<D>;
}
