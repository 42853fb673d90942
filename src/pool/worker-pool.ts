import { EventEmitter } from "node:events";
import type { CallOptions } from "../client/call-options";
import { effectiveDeadline, type EffectiveDeadline } from "../client/deadline";
import type { ServiceDefinition } from "../client/definition";
import { createTypedClient, type Client, type ClientOptions, type StreamInvoker } from "../client/typed-client";
import type { StreamMethod } from "../client/stream-method";
import { bidiStreamCall, clientStreamCall, serverStreamCall, type Admit } from "./stream-call";
import { composeMiddleware, type NextUnary, type UnaryCall } from "../client/middleware";
import { createDynamicClient, type DynamicClient, type DynamicClientOptions } from "../client/dynamic-client";
import type { UnaryMethod } from "../client/unary-method";
import { RpcError } from "../errors/rpc-error";
import { Status } from "../errors/status";
import { jsonLogger, type Logger } from "./logger";
import { resolvePoolOptions, type ResolvedPoolOptions, type WorkerPoolOptions } from "./options";
import { prepareSocketDir, removeStaleSockets, type SocketDir } from "./socket-dir";
import { SlotQueue, type Waiter } from "./slot-queue";
import { errorFromAbort, runUnaryCall } from "./unary-call";
import { describeExit, WorkerProcess } from "./worker-process";
import type { WorkerExit, WorkerState } from "./worker-state";

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
}

/** The pool as `health()` reports it. */
export interface PoolHealth {
  state: PoolState;
  total: number;
  ready: number;
  queued: number;
  workers: WorkerHealth[];
}

/** Where the pool is in its life. */
export type PoolState = "new" | "starting" | "running" | "stopping" | "stopped";

/** Events a pool emits (`pool.on(name, listener)`). */
export interface WorkerPoolEvents {
  workerReady: [{ workerId: string; pid: number | undefined; socket: string }];
  workerExit: [{ workerId: string; pid: number | undefined; code: number | null; signal: NodeJS.Signals | null; stderrTail: readonly string[]; expected: boolean }];
  workerRestart: [{ workerId: string; attempt: number; delayMs: number }];
  /** A call that had to wait in the queue got a worker after `waitedMs` (calls admitted at once emit nothing). */
  callDequeued: [{ method: string; workerId: string; waitedMs: number }];
}

/** Bookkeeping for one worker slot (the id stays; the process changes on restart). */
interface Slot {
  id: string;
  process: WorkerProcess;
  generation: number;
  restarts: number;
  lastExit: string | undefined;
  restartTimer: NodeJS.Timeout | undefined;
}

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
  private readonly slots: Slot[] = [];
  private readonly queue: SlotQueue<WorkerProcess>;
  private readyWaiters: (() => void)[] = [];
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
    const dispatch = (call: UnaryCall): Promise<unknown> => this.dispatch(call);
    this.send = options.middleware?.length ? composeMiddleware(options.middleware, dispatch) : dispatch;
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
      for (let i = 0; i < this.options.workers; i++) {
        const id = `w${i}`;
        this.slots.push({ id, process: this.newProcess(id, 0), generation: 0, restarts: 0, lastExit: undefined, restartTimer: undefined });
      }
      const results = await Promise.allSettled(this.slots.map((s) => s.process.start()));
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure) throw failure.reason;
    } catch (err) {
      this.stateValue = "stopped";
      await Promise.all(this.slots.map((s) => s.process.stop()));
      this.socketDir?.remove();
      livePools.delete(this);
      throw err;
    }
    if (this.stateValue !== "starting") return;
    this.stateValue = "running";
    for (const slot of this.slots) this.announceReady(slot);
  }

  /** A typed client for a generated service definition; each unary method returns a Promise of its response. */
  client<D extends ServiceDefinition>(definition: D, options: ClientOptions = {}): Client<D> {
    const send = options.middleware?.length ? composeMiddleware(options.middleware, this.send) : this.send;
    return createTypedClient(definition, (method, request, callOptions) => send({ method, request, options: callOptions ?? {} }) as never, this.streams);
  }

  /**
   * A client built at run time from a `.proto` file (no codegen): `call("Echo", { text: "hi" })`.
   * Requests and responses are plain objects as @grpc/proto-loader shapes them.
   */
  dynamicClient(protoPath: string, serviceName: string, options?: DynamicClientOptions): DynamicClient {
    return createDynamicClient(protoPath, serviceName, (method, request, callOptions) => this.send({ method, request, options: callOptions ?? {} }) as never, options);
  }

  /**
   * Runs one unary call through the pool's middleware and then the pool: `pool.unary(method,
   * request, options)` is what typed clients call; use it directly for a hand-built `UnaryMethod`.
   */
  unary<Res>(method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions): Promise<Res> {
    return this.send({ method, request, options: options ?? {} }) as Promise<Res>;
  }

  /**
   * Streaming calls: admitted like unary calls (they count toward `maxInFlightPerWorker` and the
   * balancing) and bound to one worker for their whole life. Client middleware applies to unary
   * calls only.
   */
  private readonly streams: StreamInvoker = {
    serverStream: (method, request, options = {}) => serverStreamCall(this.streamAdmission(method, options), method, request, options),
    clientStream: (method, requests, options = {}) => clientStreamCall(this.streamAdmission(method, options), method, requests, options),
    bidiStream: (method, requests, options = {}) => bidiStreamCall(this.streamAdmission(method, options), method, requests, options),
  };

  private streamAdmission(method: StreamMethod<unknown, unknown>, options: CallOptions): Admit {
    return async () => {
      const { worker, deadline } = await this.admit(method, options);
      return { worker, deadline, release: () => this.release(worker) };
    };
  }

  /** The pool's middleware around `dispatch`; built once. */
  private readonly send: NextUnary;

  /**
   * The end of every middleware chain: picks the ready worker with the fewest calls in flight
   * (waiting in the queue when all are at `maxInFlightPerWorker`) and runs the call there under
   * its effective deadline.
   */
  private async dispatch(call: UnaryCall): Promise<unknown> {
    const { worker, deadline } = await this.admit(call.method, call.options, call.avoidWorkers);
    return runUnaryCall(worker, call.method, call.request, deadline, call.options, () => this.release(worker));
  }

  /**
   * Admission for any call, unary or streaming: checks the pool's state and the caller's signal,
   * fixes the effective deadline, and takes a slot on a worker (waiting in the queue if needed).
   * The caller must `release(worker)` exactly once when the call ends.
   */
  private async admit(method: { path: string; idempotent: boolean }, options: CallOptions, avoid?: ReadonlySet<string>): Promise<{ worker: WorkerProcess; deadline: EffectiveDeadline }> {
    const idempotent = method.idempotent || options.idempotent === true;
    if (this.stateValue !== "running") throw this.lifecycleError(method.path);
    const signal = options.signal;
    if (signal?.aborted) throw errorFromAbort(signal, method.path, { idempotent });
    const deadline = effectiveDeadline(options, this.options.requestTimeoutMs);
    let worker = this.tryAcquire(avoid);
    if (!worker) {
      const queuedAt = performance.now();
      worker = await this.waitForSlot(method.path, deadline, signal, idempotent);
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
    }));
    return {
      state: this.stateValue,
      total: workers.length,
      ready: workers.filter((w) => w.state === "ready").length,
      queued: this.queue.length,
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
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      slot.process.kill();
    }
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
    this.queue.drain(this.lifecycleError());
    for (const w of this.readyWaiters.splice(0)) w();
    const deadline = Date.now() + graceMs;
    while (this.slots.some((s) => s.process.inFlight > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      slot.process.state = "draining";
    }
    await Promise.all(this.slots.map((s) => s.process.stop()));
    for (const slot of this.slots) slot.process.state = "stopped";
    this.socketDir?.remove();
    livePools.delete(this);
    this.stateValue = "stopped";
  }

  private newProcess(id: string, generation: number): WorkerProcess {
    const dir = this.socketDir as SocketDir;
    const proc = new WorkerProcess(id, dir.socketPath(id, generation), this.options, this.logger, dir.owned);
    proc.onExit((exit) => this.handleExit(id, proc, exit));
    return proc;
  }

  private announceReady(slot: Slot): void {
    this.emit("workerReady", { workerId: slot.id, pid: slot.process.pid, socket: slot.process.socketPath });
    for (const w of this.readyWaiters.splice(0)) w();
    this.drainQueueTo(slot.process);
  }

  private handleExit(id: string, proc: WorkerProcess, exit: WorkerExit): void {
    const slot = this.slots.find((s) => s.id === id);
    const expected = this.stateValue !== "running" || !slot || slot.process !== proc;
    this.emit("workerExit", { workerId: id, pid: proc.pid, code: exit.code, signal: exit.signal, stderrTail: proc.stderr, expected });
    if (expected || !slot) return;
    slot.lastExit = describeExit(exit);
    proc.state = "restarting";
    this.logger.warn({ workerId: id, pid: proc.pid, exit: slot.lastExit, stderrTail: proc.stderr.slice(-5) }, "worker exited unexpectedly; restarting");
    this.scheduleRestart(slot);
  }

  private scheduleRestart(slot: Slot): void {
    // Exponential backoff with full jitter, capped: a crash loop does not spin the CPU.
    const delayMs = Math.round(Math.random() * Math.min(5000, 100 * 2 ** Math.min(slot.restarts, 10)));
    slot.restarts += 1;
    this.emit("workerRestart", { workerId: slot.id, attempt: slot.restarts, delayMs });
    slot.restartTimer = setTimeout(() => {
      if (this.stateValue !== "running") return;
      slot.generation += 1;
      slot.process = this.newProcess(slot.id, slot.generation);
      slot.process.start().then(
        () => {
          if (this.stateValue === "running") this.announceReady(slot);
        },
        (err: unknown) => {
          slot.lastExit = (err as Error).message.split("\n")[0];
          this.logger.error({ workerId: slot.id, err: (err as Error).message }, "worker restart failed");
        },
      );
    }, delayMs);
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
   * Workers in `avoid` are used only when no other ready worker has room.
   */
  private tryAcquire(avoid?: ReadonlySet<string>): WorkerProcess | undefined {
    const max = this.options.maxInFlightPerWorker;
    const n = this.slots.length;
    let best: WorkerProcess | undefined;
    let fallback: WorkerProcess | undefined;
    // Start the scan at a rotating index so that ties spread over workers.
    const start = this.roundRobin++ % n;
    for (let i = 0; i < n; i++) {
      const w = this.slots[(start + i) % n].process;
      if (w.state !== "ready" || w.inFlight >= max) continue;
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
  }

  /** Hands free capacity on `worker` to queued calls, oldest first. */
  private drainQueueTo(worker: WorkerProcess): void {
    while (this.queue.length > 0 && worker.state === "ready" && worker.inFlight < this.options.maxInFlightPerWorker) {
      const waiter = this.queue.shift() as Waiter<WorkerProcess>;
      worker.inFlight += 1;
      waiter.grant(worker);
    }
  }

  private waitForSlot(method: string, deadline: EffectiveDeadline, signal: AbortSignal | undefined, idempotent: boolean): Promise<WorkerProcess> {
    const anyReady = this.slots.some((s) => s.process.state === "ready");
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
      };
      const onAbort = (): void => waiter.fail(errorFromAbort(signal as AbortSignal, method, { idempotent }));
      if (!this.queue.push(waiter)) {
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
