import type { MethodDefinition as LoaderMethod, Options as LoaderOptions } from "@grpc/proto-loader";
import { loadOnUse } from "../core/load-on-use";
import type { Interceptor } from "../call/interceptor";
import { callKindOf, type CallKind, type StreamMethod } from "../call/method";
import type { CallOptions } from "./call-options";
import { methodCaller, type CallInvoker, type RequestStream } from "./typed-client";

/** A message as @grpc/proto-loader shapes it: a plain object. */
export type PlainMessage = Record<string, unknown>;

/**
 * A client built at run time from a `.proto` file, for users without generated stubs: every
 * kind of method, plain objects in and out, the same call options, interceptors and `RpcError`
 * as a typed client. Methods are named as in the proto (`Echo`) or in lowerCamel (`echo`).
 */
export interface DynamicClient {
  /** The service's full name, e.g. `demo.v1.DemoService`. */
  readonly service: string;
  /** Every method, as written in the proto (e.g. `Echo`). */
  readonly methods: readonly string[];
  /** The kind of a method (`unary`, `server-stream`, `client-stream`, `bidi-stream`), or undefined for an unknown name. */
  kindOf(method: string): CallKind | undefined;
  /** Calls a unary method. */
  call(method: string, request: PlainMessage, options?: CallOptions): Promise<PlainMessage>;
  /** Calls a server-streaming method; the stream starts at the first `next()`. */
  serverStream(method: string, request: PlainMessage, options?: CallOptions): AsyncIterable<PlainMessage>;
  /** Calls a client-streaming method with an (async) iterable of requests. */
  clientStream(method: string, requests: RequestStream<PlainMessage>, options?: CallOptions): Promise<PlainMessage>;
  /** Calls a bidirectional method; it starts at once, requests are sent as the worker reads them. */
  bidiStream(method: string, requests: RequestStream<PlainMessage>, options?: CallOptions): AsyncIterable<PlainMessage>;
}

/** Options for loading the `.proto` file. */
export interface DynamicClientOptions {
  /** Directories to resolve imports from. */
  includeDirs?: string[];
  /** proto-loader options; procgrpc's defaults: longs and enums as strings, defaults filled in. */
  loader?: LoaderOptions;
  /** Interceptors for this client's calls, inside the pool's own. */
  interceptors?: readonly Interceptor<never>[];
}

const CALLER_OF: Record<CallKind, keyof Pick<DynamicClient, "call" | "serverStream" | "clientStream" | "bidiStream">> = {
  unary: "call",
  "server-stream": "serverStream",
  "client-stream": "clientStream",
  "bidi-stream": "bidiStream",
};

// proto-loader (and protobufjs) load with the first dynamic client, not at import time.
const protoLoader = loadOnUse<typeof import("@grpc/proto-loader")>("@grpc/proto-loader");

/** Loads `protoPath` with @grpc/proto-loader and returns a client for `serviceName` that calls through `invoker`. */
export function createDynamicClient(protoPath: string, serviceName: string, invoker: CallInvoker, options: DynamicClientOptions = {}): DynamicClient {
  const definition = protoLoader().loadSync(protoPath, {
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
  const callers = new Map<string, { kind: CallKind; call: (request: unknown, options?: CallOptions) => unknown }>();
  const names: string[] = [];
  for (const [key, raw] of Object.entries(service)) {
    const m = raw as LoaderMethod<object, object>;
    const level = m.options?.idempotency_level;
    const method: StreamMethod<unknown, PlainMessage> = {
      path: m.path,
      serialize: (req) => m.requestSerialize(req as object),
      deserialize: (bytes) => m.responseDeserialize(bytes) as PlainMessage,
      idempotent: level === "IDEMPOTENT" || level === "NO_SIDE_EFFECTS",
      idempotencyLevel: level === "IDEMPOTENT" || level === "NO_SIDE_EFFECTS" ? level : "IDEMPOTENCY_UNKNOWN",
      requestStream: m.requestStream,
      responseStream: m.responseStream,
    };
    const entry = { kind: callKindOf(method), call: methodCaller(invoker, method, undefined) };
    callers.set(m.originalName ?? key, entry);
    callers.set(key, entry);
    names.push(m.path.slice(m.path.lastIndexOf("/") + 1));
  }
  const lookup = (name: string, wanted: CallKind): ((request: unknown, options?: CallOptions) => unknown) => {
    const entry = callers.get(name);
    if (!entry) throw new TypeError(`dynamic client: ${serviceName} has no method ${name}; it has: ${names.join(", ")}`);
    if (entry.kind !== wanted) throw new TypeError(`dynamic client: ${serviceName}.${name} is a ${entry.kind} method; call it with ${CALLER_OF[entry.kind]}()`);
    return entry.call;
  };
  const rejecting = <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return fn();
    } catch (err) {
      return Promise.reject(err);
    }
  };
  return {
    service: serviceName,
    methods: names,
    kindOf: (name) => callers.get(name)?.kind,
    call: (name, request, callOptions) => rejecting(() => lookup(name, "unary")(request, callOptions) as Promise<PlainMessage>),
    serverStream: (name, request, callOptions) => lookup(name, "server-stream")(request, callOptions) as AsyncIterable<PlainMessage>,
    clientStream: (name, requests, callOptions) => rejecting(() => lookup(name, "client-stream")(requests, callOptions) as Promise<PlainMessage>),
    bidiStream: (name, requests, callOptions) => lookup(name, "bidi-stream")(requests, callOptions) as AsyncIterable<PlainMessage>,
  };
}
