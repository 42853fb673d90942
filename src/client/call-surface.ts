import { randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { BaseCallOptions } from "../call/call-options";
import type { ServiceDefinition } from "../call/definition";
import { composeInterceptors, type Call, type Interceptor, type Next } from "../call/interceptor";
import type { AnyMethod, CallKind, StreamMethod, UnaryMethod } from "../call/method";
import { closeRequests } from "../call/pushable";
import { errorFromAbort } from "../core/cancellation";
import { checkDeadlineOptions, effectiveDeadline } from "../core/deadline";
import type { Logger } from "../core/logger";
import { outgoingMetadata, requestIdIn } from "../core/metadata";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { runBatch, type BatchOptions, type BatchResult } from "../resilience/batch";
import { ResilienceEvents } from "../resilience/events";
import { poolResilience, type PoolResilience, type PoolResilienceOptions } from "../resilience/pool-resilience";
import type { Lease, CallTarget } from "../transport/call-target";
import { expiredBeforeStart } from "../transport/call-start";
import type { OutgoingCall } from "../transport/outgoing-call";
import { bidiStreamCall, clientStreamCall, serverStreamCall, type RequestSource } from "../transport/stream-call";
import { runUnaryCall } from "../transport/unary-call";
import { discardRequest, requestBytes, type UnaryRequest } from "../transport/unary-request";
import type { CallOptions } from "./call-options";
import { createDynamicClient, type DynamicClient, type DynamicClientOptions } from "./dynamic-client";
import { clientInterceptors, createTypedClient, methodCaller, unaryMethodOfCall, type CallInvoker, type Client, type ClientOptions } from "./typed-client";

/** Where a pool is in its life. */
export type PoolState = "new" | "starting" | "running" | "stopping" | "stopped";

/** What a pool tells the shared call surface about itself. */
export interface CallSurfaceConfig {
  /** `WorkerPool` or `RemotePool`, for messages. */
  readonly name: string;
  readonly logger: Logger;
  /** The deadline of calls that set none. */
  readonly requestTimeoutMs: number;
  /** The pool's own interceptors (its `middleware` option), outermost first. */
  readonly interceptors?: readonly Interceptor<never>[];
  /** Interceptors around each attempt, inside the built-in resilience (its `attemptMiddleware` option). */
  readonly attemptInterceptors?: readonly Interceptor<never>[];
  /** Built-in interceptors innermost of all, right before the pool (e.g. a remote pool's token). */
  readonly innerInterceptors?: readonly Interceptor<never>[];
  readonly resilience: PoolResilienceOptions;
}

/**
 * What `WorkerPool` and `RemotePool` share: the clients they hand out (typed, dynamic, `unary`,
 * `batch`), one interceptor chain for every kind of call (the pool's interceptors, a client's
 * own, the built-in resilience, the attempt interceptors), and the one dispatch at its end:
 * lifecycle and signal checks, the deadline, the request and metadata checked and serialised
 * before admission, a lease on a target, then the transport. Pools supply admission
 * (`acquire`) and, for unary calls, their transport (`runUnary`).
 *
 * Order of interceptors, outermost first: pool `middleware` → client `interceptors` → fallback →
 * retry → method breaker → hedging → worker breaker → `attemptMiddleware` → the pool.
 */
export abstract class CallSurface<Events extends Record<keyof Events, unknown[]>> extends EventEmitter<Events> {
  /** Events and counters of the built-in resilience policies (retry, circuit breakers, hedging, fallback). */
  readonly resilience: ResilienceEvents;
  protected readonly logger: Logger;
  protected stateValue: PoolState = "new";
  protected readonly builtIn: PoolResilience;
  private readonly requestTimeoutMs: number;
  private readonly poolInterceptors: readonly Interceptor<never>[];
  private readonly inner: Next;
  private readonly defaultInvoker: CallInvoker;
  private leasesOut = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly callIdPrefix = randomBytes(4).toString("hex");
  private callCount = 0;

  protected constructor(private readonly config: CallSurfaceConfig) {
    super();
    this.logger = config.logger;
    this.requestTimeoutMs = config.requestTimeoutMs;
    this.resilience = new ResilienceEvents(config.logger);
    this.builtIn = poolResilience(config.resilience, { events: this.resilience, logger: config.logger, requestTimeoutMs: config.requestTimeoutMs });
    this.poolInterceptors = config.interceptors ?? [];
    this.inner = composeInterceptors([...this.builtIn.interceptors, ...(config.attemptInterceptors ?? []), ...(config.innerInterceptors ?? [])], (call) => this.dispatch(call));
    this.defaultInvoker = this.invokerFor([]);
  }

  /** Where the pool is in its life. */
  get state(): PoolState {
    return this.stateValue;
  }

  /**
   * A typed client for a generated service definition: every method of every kind, typed from
   * the definition. `options.interceptors` run inside the pool's own, and the options they
   * declare join the methods' call options.
   */
  client<D extends ServiceDefinition, Ext extends object = Record<never, never>>(definition: D, options: ClientOptions<D, Ext> = {}): Client<D, CallOptions & Ext> {
    return createTypedClient(definition, this.invokerFor(clientInterceptors(options)), options);
  }

  /**
   * A client built at run time from a `.proto` file (no codegen), for every kind of method:
   * `call`, `serverStream`, `clientStream`, `bidiStream`, with plain objects as
   * @grpc/proto-loader shapes them.
   */
  dynamicClient(protoPath: string, serviceName: string, options?: DynamicClientOptions): DynamicClient {
    return createDynamicClient(protoPath, serviceName, this.invokerFor(clientInterceptors(options)), options);
  }

  /** Runs one unary call through the pool's interceptors, for a hand-built `UnaryMethod` (e.g. `rawUnaryMethod`). */
  unary<Res>(method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions): Promise<Res> {
    return this.defaultInvoker.invoke("unary", method, request, options) as Promise<Res>;
  }

  /**
   * Calls a hand-built method descriptor of any kind (e.g. one made at run time from server
   * reflection) through the pool's interceptors, as a typed client's method would: unary and
   * client-streaming calls return the promise of the response; server-streaming and
   * bidirectional calls an `AsyncIterable` of responses (a bidirectional call starts at once).
   * `request` is the message, or for client-streaming and bidirectional calls an (async)
   * iterable of messages, such as a `pushable()`.
   */
  callMethod<Res>(method: UnaryMethod<unknown, Res> | StreamMethod<unknown, Res>, request: unknown, options?: CallOptions): Promise<Res> | AsyncIterable<Res> {
    return methodCaller(this.defaultInvoker, method as AnyMethod, undefined)(request, options) as Promise<Res> | AsyncIterable<Res>;
  }

  /**
   * Runs `method` (a typed client's method, e.g. `client.score`, or a `UnaryMethod`) for every
   * request, at most `concurrency` at a time; one failure never stops the batch. See docs/resilience.md.
   */
  batch<Req, Res>(method: ((request: Req, options?: CallOptions) => Promise<Res>) | UnaryMethod<unknown, Res>, requests: readonly Req[], options?: BatchOptions): Promise<BatchResult<Res>> {
    const withEvents = { events: this.resilience, ...options };
    if (typeof method === "function") return runBatch(method, unaryMethodOfCall(method), requests, withEvents);
    return runBatch((request, callOptions) => this.unary(method, request, callOptions), method, requests, withEvents);
  }

  /** Admission: a lease on a target for this call (waiting for one if the pool queues). */
  protected abstract acquire(call: Call, out: OutgoingCall): Lease | Promise<Lease>;

  /**
   * Serializes a unary call's request, before admission. The default is its bytes; a local pool
   * may write a large one to its shared-memory lane here (`LaneRequest`). Throws the call's
   * `protocol` error for a value the message cannot hold.
   */
  protected serializeUnaryRequest(out: OutgoingCall, request: unknown): UnaryRequest {
    return serializeRequest(out, () => out.method.serialize(request));
  }

  /**
   * Runs an admitted unary call; the default is plain gRPC on the target's channel. The request
   * is its to send or discard.
   */
  protected runUnary(out: OutgoingCall, payload: UnaryRequest, lease: Lease): Promise<unknown> {
    return runUnaryCall(out, requestBytes(payload), lease);
  }

  /** A lease on `target` that counts toward the pool's calls in flight; `onRelease` runs once. */
  protected issueLease(target: CallTarget, onRelease: () => void): Lease {
    this.leasesOut += 1;
    let released = false;
    return {
      target,
      release: () => {
        if (released) return;
        released = true;
        this.leasesOut -= 1;
        onRelease();
        if (this.leasesOut === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      },
    };
  }

  /** Resolves true when no lease is out, or false after `graceMs` (shutdown drain). */
  protected waitForIdle(graceMs: number): Promise<boolean> {
    if (this.leasesOut === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, graceMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  /** The error of a call made before `start()` or after `shutdown()`. */
  protected lifecycleError(method?: string, requestId?: string): RpcError {
    const notStarted = this.stateValue === "new" || this.stateValue === "starting";
    return new RpcError({
      code: Status.FAILED_PRECONDITION,
      details: notStarted ? "pool is not started: await pool.start() before calling" : "pool is shut down",
      category: "lifecycle",
      method,
      requestId,
      reachedWorker: false,
    });
  }

  /**
   * Emits a pool event to its listeners one by one: a listener that throws is logged and the
   * others still run; supervision never depends on what listeners do.
   */
  protected emitSafely<K extends keyof Events>(name: K, ...args: Events[K]): void {
    for (const listener of this.rawListeners(name as never) as unknown as ((...a: unknown[]) => unknown)[]) {
      try {
        listener.apply(this, args);
      } catch (err) {
        this.logger.error({ event: String(name), err: err instanceof Error ? err.message : String(err) }, "a pool event listener threw; the pool carries on");
      }
    }
  }

  /** Stops the built-in breakers (shutdown). */
  protected disposeResilience(): void {
    this.builtIn.dispose();
  }

  private invokerFor(clientOwn: readonly Interceptor<never>[]): CallInvoker {
    const send = composeInterceptors([...this.poolInterceptors, ...clientOwn], this.inner);
    return { invoke: (kind, method, request, options) => this.enter(send, kind, method, request, options) };
  }

  /** Where every call enters: options checked at the call site, one request id per logical call. */
  private enter(send: Next, kind: CallKind, method: AnyMethod, request: unknown, options: BaseCallOptions | undefined): Promise<unknown> {
    try {
      checkDeadlineOptions(options);
    } catch (err) {
      return Promise.reject(err);
    }
    const requestId = options?.requestId ?? requestIdIn(options?.metadata) ?? randomUUID();
    const call: Call = { kind, method, request, options: { ...options, requestId } };
    const sent = send(call);
    // A call that failed (for a bidirectional one: before it started) tells a pushable of requests, so writes waiting on it reject.
    if (kind === "client-stream" || kind === "bidi-stream") sent.catch((err: unknown) => closeRequests(request, err));
    return sent;
  }

  /** The end of every interceptor chain. */
  private async dispatch(call: Call): Promise<unknown> {
    const { kind, method, options } = call;
    const idempotent = method.idempotent || options.idempotent === true;
    const requestId = options.requestId ?? randomUUID();
    if (this.stateValue !== "running") throw this.lifecycleError(method.path, requestId);
    const signal = options.signal;
    if (signal?.aborted) throw errorFromAbort(signal, { method: method.path, requestId, idempotent, reachedWorker: false });
    checkDeadlineOptions(options);
    const startedAt = Date.now();
    const deadline = effectiveDeadline(options, this.requestTimeoutMs, startedAt);
    const callId = `${this.callIdPrefix}-${++this.callCount}`;
    const facts = { method: method.path, requestId, idempotent };
    let metadata;
    try {
      metadata = outgoingMetadata(options.metadata, requestId, callId);
    } catch (err) {
      throw RpcError.from(err, method.path).with(facts);
    }
    const out: OutgoingCall = { kind, method, metadata, deadline, startedAt, signal, requestId, callId, idempotent, onHeader: options.onHeader, onTrailer: options.onTrailer };
    if (startedAt >= deadline.at) throw expiredBeforeStart(out, undefined);
    const payload =
      kind === "unary" ? this.serializeUnaryRequest(out, call.request)
      : kind === "server-stream" ? serializeRequest(out, () => out.method.serialize(call.request))
      : undefined;
    let lease: Lease;
    try {
      lease = await this.acquire(call, out);
    } catch (err) {
      discardRequest(payload); // never sent: a lane file written for it goes now
      throw err;
    }
    try {
      call.onDispatch?.(lease.target.id);
      switch (kind) {
        case "unary":
          return await this.runUnary(out, payload as UnaryRequest, lease);
        case "server-stream":
          return serverStreamCall(out, payload as Buffer, lease);
        case "client-stream":
          return await clientStreamCall(out, call.request as RequestSource, lease);
        case "bidi-stream":
          return bidiStreamCall(out, call.request as RequestSource, lease);
      }
    } catch (err) {
      lease.release();
      throw err;
    }
  }
}

/** Serialises a request (with `encode`) before admission: a value the message cannot hold fails here, taking no worker's capacity. */
export function serializeRequest<T>(out: OutgoingCall, encode: () => T): T {
  try {
    return encode();
  } catch (err) {
    throw new RpcError({
      code: Status.INTERNAL,
      details: `request message could not be serialized: ${err instanceof Error ? err.message : String(err)}`,
      category: "protocol",
      reachedWorker: false,
      cause: err,
      method: out.method.path,
      requestId: out.requestId,
      idempotent: out.idempotent,
    });
  }
}
