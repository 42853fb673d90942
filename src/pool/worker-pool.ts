import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { CallOptions } from "../call/call-options";
import { effectiveDeadline, type EffectiveDeadline } from "../core/deadline";
import type { ServiceDefinition } from "../call/definition";
import type { Client, ClientOptions, StreamInvoker } from "../client/typed-client";
import { batchOn, dynamicClientOn, typedClientOn, unaryOn, type CallSurface } from "../client/call-surface";
import type { BatchOptions, BatchResult } from "../resilience/batch";
import { ResilienceEvents } from "../resilience/events";
import { poolResilience } from "../resilience/pool-resilience";
import type { StreamMethod } from "../call/stream-method";
import { bidiStreamCall, clientStreamCall, serverStreamCall, type Admit } from "../transport/stream-call";
import { retryingServerStream } from "../resilience/stream-retry";
import { Pipeline } from "../transport/pipeline";
import { composeMiddleware, type NextUnary, type UnaryCall, type UnaryMiddleware, type WorkerFilter } from "../call/interceptor";
import type { DynamicClient, DynamicClientOptions } from "../client/dynamic-client";
import type { UnaryMethod } from "../call/unary-method";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { jsonLogger, type Logger } from "../core/logger";
import { resolvePoolOptions, type ResolvedPoolOptions, type WorkerPoolOptions } from "./options";
import { prepareSocketDir, removeStaleSockets, type SocketDir } from "./socket-dir";
import { SlotQueue, type Waiter } from "./slot-queue";
import { errorFromAbort, runUnaryCall } from "../transport/unary-call";
import { WorkerProcess } from "./worker-process";
import type { WorkerState } from "./worker-state";
import { HangWatchdog } from "./hang-watchdog";
import type { WorkerPoolEvents } from "./pool-events";
import { installSignalHandlers } from "./signal-handler";
import { WorkerSlot, type SlotHost } from "./worker-slot";

export type { WorkerPoolEvents } from "./pool-events";

/** A worker as `health()` reports it. */
export interface WorkerHealth {
  id: string;
  pid: number | undefined;
  socket: string;
  state: WorkerState;
  inFlight: number;
  served: number;
  restarts: number;
  lastExit: string | undefined;
  /** Resident memory of the process in MB (from /proc), undefined when it is not running. */
  rssMb: number | undefined;
}

/** The pool as `health()` reports it. */
export interface PoolHealth {
  state: PoolState;
  total: number;
  ready: number;
  /** Calls waiting in the pool queue. */
  queued: number;
  /** How long the oldest queued call has waited, ms (0 when none). */
  oldestQueuedMs: number;
  /** Old processes of recycled workers still finishing their calls. */
  draining: number;
  /** Workers marked `failed` (crash-looping), still retried at the maximum backoff. */
  failed: number;
  workers: WorkerHealth[];
}

/** Where the pool is in its life. */
export type PoolState = "new" | "starting" | "running" | "stopping" | "stopped";

// All live pools, so that a Node process exiting without shutdown() still kills its workers.
const livePools = new Set<WorkerPool>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pool of livePools) pool.killNow();
  });
}

/**
 * A supervised pool of Python worker processes, each serving gRPC on its own Unix socket.
 * `start()` it, get typed clients with `client(Definition)`, and `shutdown()` it when done.
 */
export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  private readonly options: ResolvedPoolOptions;
  private readonly logger: Logger;
  private readonly slots: WorkerSlot[] = [];
  private readonly queue: SlotQueue<WorkerProcess>;
  private readonly watchdog: HangWatchdog;
  private readonly slotHost: SlotHost;
  private removeSignalHandlers: (() => void) | undefined;
  private socketDir: SocketDir | undefined;
  private stateValue: PoolState = "new";
  private shutdownPromise: Promise<void> | undefined;
  private startPromise: Promise<void> | undefined;
  private roundRobin = 0;

  /** Validates options at once: a bad option or a socket path over the Unix limit throws here. */
  constructor(options: WorkerPoolOptions) {
    super();
    this.options = resolvePoolOptions(options);
    this.logger = options.logger ?? jsonLogger("info");
    this.queue = new SlotQueue(this.options.maxQueue);
    this.watchdog = new HangWatchdog(this.options.cancelGraceMs, this.options.hardTimeoutMs, (call, reason, runningMs) =>
      this.slots.find((s) => s.id === call.worker.id)?.killForHang(call.worker, reason, call.method, call.requestId, runningMs),
    );
    this.slotHost = {
      options: this.options,
      logger: this.logger,
      running: () => this.stateValue === "running",
      createProcess: (id, generation) => {
        const dir = this.socketDir as SocketDir;
        return new WorkerProcess(id, dir.socketPath(id, generation), this.options, this.logger, dir.owned);
      },
      emit: (name, ...args) => this.emit(name, ...(args as never)),
      workerAvailable: (worker) => this.drainQueueTo(worker),
      workerGone: (worker) => this.watchdog.forget(worker),
      counts: () => ({ ready: this.slots.filter((s) => s.process.state === "ready").length, total: this.slots.length }),
    };
    const dispatch = (call: UnaryCall): Promise<unknown> => this.dispatch(call);
    // User middleware outermost, then the built-in resilience chain (docs/resilience.md), then
    // per-attempt middleware (e.g. the attempt span of tracing) right before the pool.
    const resilience = poolResilience(options, { events: this.resilience, logger: this.logger, requestTimeoutMs: this.options.requestTimeoutMs });
    this.send = composeMiddleware([...(options.middleware ?? []), ...resilience.middleware, ...(options.attemptMiddleware ?? [])], dispatch);
    this.streamRetry = resilience.streamRetry;
    // A worker that stops taking calls (draining, recycled, unhealthy, stopping) gets its
    // pipeline half-closed: calls already on it are answered, then the stream ends, so an open
    // pipe never holds the worker's graceful stop.
    this.on("workerState", ({ workerId, to }) => {
      if (to === "ready") return;
      for (const [worker, pipeline] of this.pipelines) if (worker.id === workerId) pipeline.close();
    });
    // Fail fast on a socket path that cannot be bound, before anything is spawned.
    if (this.options.socketDir) prepareSocketDir(this.options.socketDir, this.options.workers).path;
  }

  /** Where the pool is in its life. */
  get state(): PoolState {
    return this.stateValue;
  }

  /**
   * Spawns every worker and resolves when all answer grpc.health.v1 Check with SERVING. If any
   * fails, every process already started is stopped, every socket removed, and the error (a
   * `WorkerStartError` naming the worker, command and stderr tail) is thrown.
   */
  start(): Promise<void> {
    if (this.stateValue !== "new") {
      return Promise.reject(new Error(`WorkerPool.start(): the pool is already ${this.stateValue}; create a new pool`));
    }
    this.stateValue = "starting";
    this.startPromise = this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    livePools.add(this);
    installExitHook();
    try {
      if (this.options.socketDir) await removeStaleSockets(this.options.socketDir);
      this.socketDir = prepareSocketDir(this.options.socketDir, this.options.workers);
      for (let i = 0; i < this.options.workers; i++) this.slots.push(new WorkerSlot(`w${i}`, this.slotHost));
      const results = await Promise.allSettled(this.slots.map((s) => s.startFirst()));
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure) throw failure.reason;
    } catch (err) {
      this.stateValue = "stopped";
      await Promise.all(this.slots.map((s) => s.stop()));
      this.socketDir?.remove();
      livePools.delete(this);
      throw err;
    }
    if (this.stateValue !== "starting") return;
    this.stateValue = "running";
    this.watchdog.start();
    if (this.options.handleSignals) {
      this.removeSignalHandlers = installSignalHandlers(
        () => this.shutdown(),
        (err) => this.logger.error({ err: (err as Error).message }, "shutdown on signal failed"),
      );
    }
    for (const slot of this.slots) slot.activate();
  }

  /** A typed client for a generated service definition; each unary method returns a Promise of its response. */
  client<D extends ServiceDefinition>(definition: D, options: ClientOptions = {}): Client<D> {
    return typedClientOn(this.surface, definition, options);
  }

  /**
   * A client built at run time from a `.proto` file (no codegen): `call("Echo", { text: "hi" })`.
   * Requests and responses are plain objects as @grpc/proto-loader shapes them.
   */
  dynamicClient(protoPath: string, serviceName: string, options?: DynamicClientOptions): DynamicClient {
    return dynamicClientOn(this.surface, protoPath, serviceName, options);
  }

  /**
   * Runs one unary call through the pool's middleware and then the pool: `pool.unary(method,
   * request, options)` is what typed clients call; use it directly for a hand-built `UnaryMethod`.
   */
  unary<Res>(method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions): Promise<Res> {
    return unaryOn(this.surface, method, request, options);
  }

  /**
   * Streaming calls: admitted like unary calls (they count toward `maxInFlightPerWorker` and the
   * balancing) and bound to one worker for their whole life. Client middleware applies to unary
   * calls only.
   */
  private readonly streams: StreamInvoker = {
    serverStream: (method, request, options = {}) =>
      retryingServerStream(this.streamRetry, method, request, options, (attempt, avoid) =>
        serverStreamCall(this.streamAdmission(method, attempt, avoid), method, request, attempt)[Symbol.asyncIterator](),
      ),
    clientStream: (method, requests, options = {}) => clientStreamCall(this.streamAdmission(method, options), method, requests, options),
    bidiStream: (method, requests, options = {}) => bidiStreamCall(this.streamAdmission(method, options), method, requests, options),
  };

  /** The pool's retry policy for opening server streams (up to their first message). */
  private readonly streamRetry: UnaryMiddleware;

  private streamAdmission(method: StreamMethod<unknown, unknown>, options: CallOptions, avoid?: ReadonlySet<string>): Admit {
    return async () => {
      const { worker, deadline } = await this.admit(method, options, avoid);
      return { worker, deadline, release: () => this.release(worker) };
    };
  }

  /** Events and counters of the built-in resilience policies (retry, circuit breakers, hedging, fallback). */
  readonly resilience = new ResilienceEvents();

  /**
   * Runs `method` (a typed client's method, e.g. `client.score`, or a `UnaryMethod`) for every
   * request, at most `concurrency` at a time; one failure never stops the batch. Resolves with
   * `{ succeeded: [{ index, response }], failed: [{ index, error }], deadLetterIds }`; items that
   * fail for good go to `deadLetters` when given. See docs/resilience.md.
   */
  batch<Req, Res>(method: ((request: Req, options?: CallOptions) => Promise<Res>) | UnaryMethod<unknown, Res>, requests: readonly Req[], options?: BatchOptions): Promise<BatchResult<Res>> {
    return batchOn(this.surface, method, requests, { events: this.resilience, ...options });
  }

  /** What the shared client builders (src/client/client-surface.ts) need: the middleware chain and the stream calls. */
  private get surface(): CallSurface {
    return { send: this.send, streams: this.streams };
  }

  /** The pool's middleware around `dispatch`; built once. */
  private readonly send: NextUnary;

  /**
   * The end of every middleware chain: picks the ready worker with the fewest calls in flight
   * (waiting in the queue when all are at `maxInFlightPerWorker`) and runs the call there under
   * its effective deadline.
   */
  private async dispatch(call: UnaryCall): Promise<unknown> {
    // The request id is fixed here so that the hang watchdog can recognise the call in the worker.
    const options = call.options.requestId ? call.options : { ...call.options, requestId: randomUUID() };
    const { worker, deadline } = await this.admit(call.method, options, call.avoidWorkers, call.excludeWorkers);
    call.onDispatch?.(worker.id);
    const watched = this.watchdog.begin(worker, options.requestId as string, call.method.path);
    try {
      const value = await this.runOn(worker, call.method, call.request, deadline, options);
      this.watchdog.end(watched);
      return value;
    } catch (err) {
      // Ended by Node (deadline or signal) without the handler's answer: the handler may still run.
      const code = err instanceof RpcError ? err.code() : undefined;
      if ((code === Status.DEADLINE_EXCEEDED || code === Status.CANCELLED) && !worker.exit) this.watchdog.cancelled(watched);
      else this.watchdog.end(watched);
      throw err;
    }
  }

  /**
   * Runs an admitted unary call on its worker with the pool's transport: as its own HTTP/2
   * stream ("unary"), or as a message on the worker's pipeline stream ("pipelined"), where a
   * request over `pipelineMaxRequestBytes` still takes its own stream so that large messages
   * never hold up small ones.
   */
  private runOn(worker: WorkerProcess, method: UnaryMethod<unknown, unknown>, request: unknown, deadline: EffectiveDeadline, options: CallOptions): Promise<unknown> {
    const release = (): void => this.release(worker);
    if (this.options.transport !== "pipelined" || !worker.channel) return runUnaryCall(worker, method, request, deadline, options, release);
    const payload = method.serialize(request);
    if (payload.length > this.options.pipelineMaxRequestBytes) {
      return runUnaryCall(worker, { ...method, serialize: (bytes) => bytes as Buffer }, payload, deadline, options, release);
    }
    let pipeline = this.pipelines.get(worker);
    if (!pipeline) {
      pipeline = new Pipeline(worker, worker.channel, (closed) => {
        if (this.pipelines.get(worker) === closed) this.pipelines.delete(worker);
      });
      this.pipelines.set(worker, pipeline);
    }
    return pipeline.call(method, payload, deadline, options, release);
  }

  /** Open pipelines (transport "pipelined"), one per worker that has served a call. */
  private readonly pipelines = new Map<WorkerProcess, Pipeline>();

  /** Calls waiting on pipelines now; zero when idle (tests check that no call state leaks). */
  get pipelinedCallsPending(): number {
    let n = 0;
    for (const p of this.pipelines.values()) n += p.size;
    return n;
  }

  /**
   * Admission for any call, unary or streaming: checks the pool's state and the caller's signal,
   * fixes the effective deadline, and takes a slot on a worker (waiting in the queue if needed).
   * The caller must `release(worker)` exactly once when the call ends.
   */
  private async admit(method: { path: string; idempotent: boolean }, options: CallOptions, avoid?: ReadonlySet<string>, exclude?: WorkerFilter): Promise<{ worker: WorkerProcess; deadline: EffectiveDeadline }> {
    const idempotent = method.idempotent || options.idempotent === true;
    if (this.stateValue !== "running") throw this.lifecycleError(method.path);
    const signal = options.signal;
    if (signal?.aborted) throw errorFromAbort(signal, method.path, { idempotent, reachedWorker: false });
    const deadline = effectiveDeadline(options, this.options.requestTimeoutMs);
    let worker = this.tryAcquire(avoid, exclude);
    if (!worker) {
      const queuedAt = performance.now();
      worker = await this.waitForSlot(method.path, deadline, signal, idempotent, exclude);
      this.emit("callDequeued", { method: method.path, workerId: worker.id, waitedMs: performance.now() - queuedAt });
    }
    return { worker, deadline };
  }

  /** A snapshot of every worker and of the pool. */
  health(): PoolHealth {
    const workers = this.slots.map((s) => ({
      id: s.id,
      pid: s.process.pid,
      socket: s.process.socketPath,
      state: s.process.state,
      inFlight: s.process.inFlight,
      served: s.process.served,
      restarts: s.restarts,
      lastExit: s.lastExit,
      rssMb: s.residentMb(),
    }));
    const oldest = this.queue.oldestQueuedAt();
    return {
      state: this.stateValue,
      total: workers.length,
      ready: workers.filter((w) => w.state === "ready").length,
      queued: this.queue.length,
      oldestQueuedMs: oldest === undefined ? 0 : Math.round(performance.now() - oldest),
      draining: this.slots.reduce((n, s) => n + s.draining, 0),
      failed: this.slots.filter((s) => s.failed).length,
      workers,
    };
  }

  /**
   * Stops the pool: new and queued calls fail with FAILED_PRECONDITION, in-flight calls get
   * `graceMs` to finish, then workers get SIGTERM (SIGKILL after `killTimeoutMs`); every socket
   * and the socket directory are removed. Idempotent; concurrent calls share one result.
   */
  shutdown(options: { graceMs?: number } = {}): Promise<void> {
    this.shutdownPromise ??= this.doShutdown(options.graceMs ?? this.options.shutdownGraceMs);
    return this.shutdownPromise;
  }

  /** SIGKILLs every worker synchronously; used when the Node process exits without shutdown(). */
  killNow(): void {
    for (const slot of this.slots) slot.killNow();
    this.socketDir?.remove();
  }

  private async doShutdown(graceMs: number): Promise<void> {
    if (this.stateValue === "new") {
      this.stateValue = "stopped";
      return;
    }
    if (this.stateValue === "starting") {
      // start() cleans up after itself on failure; wait for it rather than race it.
      await this.startPromise?.catch(() => undefined);
      if ((this.stateValue as PoolState) === "stopped") return;
    }
    this.stateValue = "stopping";
    this.removeSignalHandlers?.();
    this.queue.drain(this.lifecycleError());
    const deadline = Date.now() + graceMs;
    while (this.slots.some((s) => s.process.inFlight > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    this.watchdog.stop();
    for (const pipeline of this.pipelines.values()) pipeline.close();
    await Promise.all(this.slots.map((s) => s.stop()));
    this.socketDir?.remove();
    livePools.delete(this);
    this.stateValue = "stopped";
  }

  private lifecycleError(method?: string): RpcError {
    const notStarted = this.stateValue === "new" || this.stateValue === "starting";
    return new RpcError({
      code: Status.FAILED_PRECONDITION,
      details: notStarted ? "pool is not started: await pool.start() before calling" : "pool is shut down",
      category: "lifecycle",
      method,
      reachedWorker: false,
    });
  }

  /**
   * Takes a slot on the least-loaded ready worker, or returns undefined when none is free.
   * Workers in `avoid` are used only when no other ready worker has room; workers in `exclude` never.
   */
  private tryAcquire(avoid?: ReadonlySet<string>, exclude?: WorkerFilter): WorkerProcess | undefined {
    const max = this.options.maxInFlightPerWorker;
    const n = this.slots.length;
    let best: WorkerProcess | undefined;
    let fallback: WorkerProcess | undefined;
    // Start the scan at a rotating index so that ties spread over workers.
    const start = this.roundRobin++ % n;
    for (let i = 0; i < n; i++) {
      const w = this.slots[(start + i) % n].process;
      if (w.state !== "ready" || w.inFlight >= max || exclude?.has(w.id)) continue;
      if (avoid?.has(w.id)) {
        if (!fallback || w.inFlight < fallback.inFlight) fallback = w;
      } else if (!best || w.inFlight < best.inFlight) {
        best = w;
      }
    }
    const chosen = best ?? fallback;
    if (chosen) chosen.inFlight += 1;
    return chosen;
  }

  private release(worker: WorkerProcess): void {
    worker.inFlight -= 1;
    worker.served += 1;
    if (worker.state === "ready") this.drainQueueTo(worker);
    this.slots.find((s) => s.id === worker.id)?.onServed(worker);
  }

  /** Hands free capacity on `worker` to queued calls, oldest first. */
  private drainQueueTo(worker: WorkerProcess): void {
    while (this.queue.length > 0 && worker.state === "ready" && worker.inFlight < this.options.maxInFlightPerWorker) {
      const waiter = this.queue.shiftFor(worker.id);
      if (!waiter) return;
      worker.inFlight += 1;
      waiter.grant(worker);
    }
  }

  private waitForSlot(method: string, deadline: EffectiveDeadline, signal: AbortSignal | undefined, idempotent: boolean, exclude?: WorkerFilter): Promise<WorkerProcess> {
    const anyReady = this.slots.some((s) => s.process.state === "ready" && !exclude?.has(s.id));
    return new Promise<WorkerProcess>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.queue.remove(waiter);
      };
      const waiter: Waiter<WorkerProcess> = {
        grant: (w) => {
          cleanup();
          resolve(w);
        },
        fail: (err) => {
          cleanup();
          reject(err);
        },
        excludes: exclude,
      };
      const onAbort = (): void => waiter.fail(errorFromAbort(signal as AbortSignal, method, { idempotent, reachedWorker: false }));
      if (!this.queue.push(waiter)) {
        this.emit("queueFull", { method, maxQueue: this.options.maxQueue });
        reject(new RpcError({ code: Status.RESOURCE_EXHAUSTED, details: `pool queue is full (${this.options.maxQueue} calls waiting)`, category: "lifecycle", method, reachedWorker: false }));
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      const waitMs = deadline.at - Date.now();
      const readyWaitMs = anyReady ? Infinity : this.options.waitForReadyMs;
      if (readyWaitMs < waitMs) {
        timer = setTimeout(() => waiter.fail(new RpcError({ code: Status.UNAVAILABLE, details: `no healthy workers available (waited ${readyWaitMs} ms)`, category: "lifecycle", method, reachedWorker: false })), readyWaitMs);
      } else {
        timer = setTimeout(() => waiter.fail(new RpcError({ code: Status.DEADLINE_EXCEEDED, details: "deadline exceeded while waiting for a free worker", category: "timeout", timeoutKind: deadline.kind, method, reachedWorker: false, idempotent })), Math.max(0, waitMs));
      }
    });
  }
}
