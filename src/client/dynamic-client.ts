import { loadSync, type MethodDefinition as LoaderMethod, type Options as LoaderOptions } from "@grpc/proto-loader";
import type { CallOptions } from "../call/call-options";
import type { UnaryInvoker } from "./typed-client";
import type { UnaryMethod } from "../call/unary-method";

/** A client built at run time from a `.proto` file, for users without generated stubs. */
export interface DynamicClient {
  /** The service's full name, e.g. `demo.v1.DemoService`. */
  readonly service: string;
  /** Names of the unary methods, as written in the proto (e.g. `Echo`). */
  readonly methods: readonly string[];
  /** Calls a unary method by its proto name (or lowerCamel name) with a plain-object request. */
  call(method: string, request: Record<string, unknown>, options?: CallOptions): Promise<Record<string, unknown>>;
}

/** Options for loading the `.proto` file. */
export interface DynamicClientOptions {
  /** Directories to resolve imports from. */
  includeDirs?: string[];
  /** proto-loader options; procgrpc's defaults: longs and enums as strings, defaults filled in. */
  loader?: LoaderOptions;
}

/** Loads `protoPath` with @grpc/proto-loader and returns a client for `serviceName` that calls through `invoke`. */
export function createDynamicClient(protoPath: string, serviceName: string, invoke: UnaryInvoker, options: DynamicClientOptions = {}): DynamicClient {
  const definition = loadSync(protoPath, {
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: options.includeDirs,
    ...options.loader,
  });
  const service = definition[serviceName];
  if (!service || typeof service !== "object" || "format" in service) {
    const services = Object.entries(definition)
      .filter(([, d]) => !("format" in d))
      .map(([name]) => name);
    throw new Error(`dynamic client: ${protoPath} has no service ${serviceName}; it has: ${services.join(", ") || "(none)"}`);
  }
  const methods = new Map<string, UnaryMethod<unknown, Record<string, unknown>>>();
  for (const [key, raw] of Object.entries(service)) {
    const m = raw as LoaderMethod<object, object>;
    if (m.requestStream || m.responseStream) continue;
    const level = m.options?.idempotency_level;
    const unary: UnaryMethod<unknown, Record<string, unknown>> = {
      path: m.path,
      serialize: (req) => m.requestSerialize(req as object),
      deserialize: (bytes) => m.responseDeserialize(bytes) as Record<string, unknown>,
      idempotent: level === "IDEMPOTENT" || level === "NO_SIDE_EFFECTS",
    };
    methods.set(m.originalName ?? key, unary);
    methods.set(key, unary);
  }
  return {
    service: serviceName,
    methods: [...new Set([...methods.values()].map((m) => m.path.slice(m.path.lastIndexOf("/") + 1)))],
    call(method, request, callOptions) {
      const unary = methods.get(method);
      if (!unary) {
        return Promise.reject(new Error(`dynamic client: ${serviceName} has no unary method ${method}; it has: ${this.methods.join(", ")}`));
      }
      return invoke(unary, request, callOptions);
    },
  };
}
