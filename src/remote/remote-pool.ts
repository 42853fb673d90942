import { Metadata, type ServiceError } from "@grpc/grpc-js";
import type { CallOptions, MetadataInit } from "../call/call-options";
import { batchOn, dynamicClientOn, typedClientOn, unaryOn, type CallSurface } from "../client/call-surface";
import { effectiveDeadline, type EffectiveDeadline } from "../core/deadline";
import type { ServiceDefinition } from "../call/definition";
import type { DynamicClient, DynamicClientOptions } from "../client/dynamic-client";
import { composeMiddleware, type NextUnary, type UnaryCall, type UnaryMiddleware, type WorkerFilter } from "../call/interceptor";
import type { StreamMethod } from "../call/stream-method";
import type { Client, ClientOptions, StreamInvoker } from "../client/typed-client";
import type { UnaryMethod } from "../call/unary-method";
import { rpcErrorFromServiceError } from "../transport/grpc-status";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { checkHealth } from "../transport/health-check";
import { jsonLogger, type Logger } from "../core/logger";
import { bidiStreamCall, clientStreamCall, serverStreamCall, type Admit } from "../transport/stream-call";
import { errorFromAbort, runUnaryCall } from "../transport/unary-call";
import type { BatchOptions, BatchResult } from "../resilience/batch";
import { ResilienceEvents } from "../resilience/events";
import { poolResilience } from "../resilience/pool-resilience";
import { retryingServerStream } from "../resilience/stream-retry";
import { resolveRemoteOptions, type RemotePoolOptions, type ResolvedRemoteOptions } from "./remote-options";
import { RemoteTarget, type TargetState } from "./remote-target";
import type { ServingStatus } from "../transport/health-check";
import { withTlsHint } from "./tls-hint";

/** A target as `health()` reports it. */
export interface RemoteTargetHealth {
  id: string;
  /** The grpc-js channel state: `READY`, `CONNECTING`, `IDLE`, `TRANSIENT_FAILURE`, `SHUTDOWN`. */
  state: TargetState;
  /** The last grpc.health.v1 answer of a single-endpoint target (undefined before one, and for `dns:` targets). */
  serving: ServingStatus | undefined;
  inFlight: number;
  served: number;
}

/** The remote pool as `health()` reports it. */
export interface RemotePoolHealth {
  state: "new" | "starting" | "running" | "stopping" | "stopped";
  total: number;
  /** Targets whose channel is READY. */
  ready: number;
  targets: RemoteTargetHealth[];
}

/** `start()` could not reach a target: which one and the last error it gave. */
export class RemoteStartError extends Error {
  constructor(readonly failures: readonly { target: string; reason: string }[], timeoutMs: number) {
    super(`RemotePool.start(): ${failures.map((f) => `${f.target} did not answer grpc.health.v1 SERVING within ${timeoutMs} ms (${f.reason})`).join("; ")}`);
    this.name = "RemoteStartError";
  }
}

/**
 * Python workers on other hosts, reached over TCP (TLS, bearer token) with grpc-js's own name
 * resolution and balancing: the same `client(Definition)`, `dynamicClient`, `batch`, middleware,
 * resilience options and `RpcError` model as `WorkerPool`, without process supervision (whatever
 * runs the workers, e.g. Kubernetes, supervises them). See docs/scaling.md.
 */
export class RemotePool {
  private readonly options: ResolvedRemoteOptions;
  private readonly logger: Logger;
  private readonly targets: RemoteTarget[] = [];
  private stateValue: RemotePoolHealth["state"] = "new";
  private shutdownPromise: Promise<void> | undefined;
  private rotate = 0;
  private healthTimer: NodeJS.Timeout | undefined;
  private readonly send: NextUnary;
  private readonly streamRetry: UnaryMiddleware;
  /** Events and counters of the built-in resilience policies, as on `WorkerPool`. */
  readonly resilience = new ResilienceEvents();

  /** Validates options at once (targets, TLS, the plaintext rule); no connection is made before `start()`. */
  constructor(options: RemotePoolOptions) {
    this.options = resolveRemoteOptions(options);
    this.logger = options.logger ?? jsonLogger("info");
    const resilience = poolResilience(options, { events: this.resilience, logger: this.logger, requestTimeoutMs: this.options.requestTimeoutMs });
    this.send = composeMiddleware([...(options.middleware ?? []), ...resilience.middleware, ...(options.attemptMiddleware ?? [])], (call) => this.dispatch(call));
    this.streamRetry = resilience.streamRetry;
  }

  /** Where the pool is in its life. */
  get state(): RemotePoolHealth["state"] {
    return this.stateValue;
  }

  /**
   * Opens one channel per target and (unless `checkOnStart: false`) waits until each answers
   * grpc.health.v1 Check with SERVING; rejects with a `RemoteStartError` naming every target
   * that did not, with its last error (e.g. a TLS failure), and closes the channels.
   */
  async start(): Promise<void> {
    if (this.stateValue !== "new") throw new Error(`RemotePool.start(): the pool is already ${this.stateValue}; create a new pool`);
    this.stateValue = "starting";
    for (const id of this.options.targets) this.targets.push(new RemoteTarget(id, this.options));
    if (this.options.checkOnStart) {
      const results = await Promise.all(this.targets.map((t) => this.awaitServing(t)));
      const failures = results.flatMap((reason, i) => (reason === undefined ? [] : [{ target: this.targets[i].id, reason }]));
      if (failures.length > 0) {
        for (const t of this.targets) t.close();
        this.stateValue = "stopped";
        throw new RemoteStartError(failures, this.options.startTimeoutMs);
      }
    }
    if ((this.stateValue as string) !== "starting") return;
    this.stateValue = "running";
    const interval = this.options.healthCheckIntervalMs;
    if (interval > 0) {
      const checkAll = (): void => this.targets.forEach((t) => t.checkHealth(Math.min(interval, 2000)));
      checkAll();
      this.healthTimer = setInterval(checkAll, interval);
      this.healthTimer.unref();
    }
    this.logger.info({ targets: this.options.targets, tls: this.options.tls !== undefined, token: this.options.token !== undefined }, "remote pool running");
  }

  /** Resolves with undefined once `target` answers SERVING, or with the last failure when start time runs out. */
  private async awaitServing(target: RemoteTarget): Promise<string | undefined> {
    const until = Date.now() + this.options.startTimeoutMs;
    let last = "no answer";
    while (Date.now() < until) {
      const channel = target.channel;
      if (!channel) return "channel closed";
      const deadlineAt = Math.min(until, Date.now() + 2000);
      try {
        const status = await checkHealth(channel, new Date(deadlineAt));
        if (status === "SERVING") return undefined;
        last = `health answered ${status}`;
      } catch (err) {
        const facts = { method: "/grpc.health.v1.Health/Check", workerId: target.id, idempotent: true, deadlineAt, deadlineKind: "transport" as const };
        const rpc = withTlsHint(rpcErrorFromServiceError(err as ServiceError, facts), target.id) as RpcError;
        last = `${Status[rpc.code()]}: ${rpc.details()}`;
      }
      await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, until - Date.now()))));
    }
    return last;
  }

  /** A typed client for a generated service definition, exactly as `WorkerPool.client`. */
  client<D extends ServiceDefinition>(definition: D, options: ClientOptions = {}): Client<D> {
    return typedClientOn(this.surface, definition, options);
  }

  /** A client built at run time from a `.proto` file (no codegen), as `WorkerPool.dynamicClient`. */
  dynamicClient(protoPath: string, serviceName: string, options?: DynamicClientOptions): DynamicClient {
    return dynamicClientOn(this.surface, protoPath, serviceName, options);
  }

  /** One unary call through the pool's middleware, as `WorkerPool.unary`. */
  unary<Res>(method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions): Promise<Res> {
    return unaryOn(this.surface, method, request, options);
  }

  /** Runs a method for every request with bounded concurrency, as `WorkerPool.batch` (docs/resilience.md). */
  batch<Req, Res>(method: ((request: Req, options?: CallOptions) => Promise<Res>) | UnaryMethod<unknown, Res>, requests: readonly Req[], options?: BatchOptions): Promise<BatchResult<Res>> {
    return batchOn(this.surface, method, requests, { events: this.resilience, ...options });
  }

  private get surface(): CallSurface {
    return { send: this.send, streams: this.streams };
  }

  /** Streaming calls: bound to one target for their whole life; the token is added like on unary calls. */
  private readonly streams: StreamInvoker = {
    // Opening a server stream is retried by the same policy as on WorkerPool (until its first message).
    serverStream: (method, request, options = {}) =>
      retryingServerStream(this.streamRetry, method, request, options, (attempt, avoid) =>
        serverStreamCall(this.streamAdmission(method, attempt, avoid), method, request, this.withToken(attempt))[Symbol.asyncIterator](),
      ),
    clientStream: (method, requests, options = {}) => clientStreamCall(this.streamAdmission(method, options), method, requests, this.withToken(options)),
    bidiStream: (method, requests, options = {}) => bidiStreamCall(this.streamAdmission(method, options), method, requests, this.withToken(options)),
  };

  private streamAdmission(method: StreamMethod<unknown, unknown>, options: CallOptions, avoid?: ReadonlySet<string>): Admit {
    return async () => {
      const { target, deadline } = this.admit(method, options, avoid);
      return { worker: target, deadline, release: () => this.release(target) };
    };
  }

  /** The end of every middleware chain: picks a target and runs the call on its channel. */
  private async dispatch(call: UnaryCall): Promise<unknown> {
    const options = this.withToken(call.options);
    const { target, deadline } = this.admit(call.method, options, call.avoidWorkers, call.excludeWorkers);
    call.onDispatch?.(target.id);
    try {
      return await runUnaryCall(target, call.method, call.request, deadline, options, () => this.release(target));
    } catch (err) {
      throw withTlsHint(err, target.id);
    }
  }

  /**
   * Checks the pool's state and the caller's signal, fixes the deadline, and picks the target
   * with the fewest calls in flight among those whose channel is not failing (all of them when
   * every one is, so that the call fails with the channel's own reason, e.g. a TLS error).
   */
  private admit(method: { path: string; idempotent: boolean }, options: CallOptions, avoid?: ReadonlySet<string>, exclude?: WorkerFilter): { target: RemoteTarget; deadline: EffectiveDeadline } {
    const idempotent = method.idempotent || options.idempotent === true;
    if (this.stateValue !== "running") {
      const notStarted = this.stateValue === "new" || this.stateValue === "starting";
      throw new RpcError({ code: Status.FAILED_PRECONDITION, details: notStarted ? "remote pool is not started: await pool.start() before calling" : "pool is shut down", category: "lifecycle", method: method.path, reachedWorker: false });
    }
    if (options.signal?.aborted) throw errorFromAbort(options.signal, method.path, { idempotent, reachedWorker: false });
    const deadline = effectiveDeadline(options, this.options.requestTimeoutMs);
    const allowed = this.targets.filter((t) => !exclude?.has(t.id));
    if (allowed.length === 0) {
      throw new RpcError({ code: Status.UNAVAILABLE, details: `no remote target available: all ${this.targets.length} are excluded (open circuit breakers)`, category: "lifecycle", method: method.path, reachedWorker: false, idempotent });
    }
    const healthy = allowed.filter((t) => t.state !== "TRANSIENT_FAILURE" && t.serving !== "NOT_SERVING");
    const preferred = healthy.filter((t) => !avoid?.has(t.id));
    const pool = preferred.length > 0 ? preferred : healthy.length > 0 ? healthy : allowed;
    let best: RemoteTarget | undefined;
    const start = this.rotate++;
    for (let i = 0; i < pool.length; i++) {
      const t = pool[(start + i) % pool.length];
      if (!best || t.inFlight < best.inFlight) best = t;
    }
    const target = best as RemoteTarget;
    target.inFlight += 1;
    return { target, deadline };
  }

  private release(target: RemoteTarget): void {
    target.inFlight -= 1;
    target.served += 1;
  }

  /** Adds `authorization: Bearer <token>` unless the caller set an authorization header. */
  private withToken(options: CallOptions): CallOptions {
    const token = this.options.token;
    if (token === undefined) return options;
    const md = options.metadata;
    if (md instanceof Metadata) {
      if (md.get("authorization").length > 0) return options;
      const copy = md.clone();
      copy.set("authorization", `Bearer ${token}`);
      return { ...options, metadata: copy };
    }
    if (md && Object.keys(md).some((k) => k.toLowerCase() === "authorization")) return options;
    const merged: MetadataInit = { ...(md ?? {}), authorization: `Bearer ${token}` };
    return { ...options, metadata: merged };
  }

  /** Every target's channel state and call counts. */
  health(): RemotePoolHealth {
    const targets = this.targets.map((t) => ({ id: t.id, state: t.state, serving: t.serving, inFlight: t.inFlight, served: t.served }));
    return { state: this.stateValue, total: targets.length, ready: targets.filter((t) => t.state === "READY").length, targets };
  }

  /**
   * Stops the pool: new calls fail with FAILED_PRECONDITION, in-flight calls get `graceMs` to
   * finish, then the channels are closed. The remote workers keep running. Idempotent.
   */
  shutdown(options: { graceMs?: number } = {}): Promise<void> {
    this.shutdownPromise ??= this.doShutdown(options.graceMs ?? this.options.shutdownGraceMs);
    return this.shutdownPromise;
  }

  private async doShutdown(graceMs: number): Promise<void> {
    if (this.stateValue === "new") {
      this.stateValue = "stopped";
      return;
    }
    this.stateValue = "stopping";
    clearInterval(this.healthTimer);
    const until = Date.now() + graceMs;
    while (this.targets.some((t) => t.inFlight > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    for (const t of this.targets) t.close();
    this.stateValue = "stopped";
  }
}
