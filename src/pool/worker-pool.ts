import type { Call } from "../call/interceptor";
import { jsonLogger } from "../core/logger";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { partsLength } from "../call/message-parts";
import { CallSurface, serializeRequest, type PoolState } from "../client/call-surface";
import type { CircuitsHealth } from "../resilience/pool-resilience";
import type { Lease } from "../transport/call-target";
import { callFacts, type OutgoingCall } from "../transport/outgoing-call";
import { openPoolLane } from "../transport/lane-options";
import { laneProtocolError, type PipeLane } from "../transport/lane-pipe";
import { Pipeline } from "../transport/pipeline";
import { grpcPipeStream } from "../transport/pipe-stream";
import { SocketPipeStream } from "../transport/socket-pipe-stream";
import { runUnaryCall } from "../transport/unary-call";
import { LaneRequest, discardRequest, requestBytes, requestLength, type UnaryRequest } from "../transport/unary-request";
import { runningHandlers } from "../transport/worker-introspection";
import { Admission } from "./admission";
import { Autoscaler, ScalingPolicy, type ScaleReason } from "./autoscaler";
import { HangWatchdog } from "./hang-watchdog";
import { resolvePoolOptions, type ResolvedPoolOptions, type WorkerPoolOptions } from "./options";
import type { SlotRole, WorkerPoolEvents } from "./pool-events";
import { portable } from "./platform";
import { ReloadWatcher } from "./reload-watcher";
import { installSignalHandlers } from "./signal-handler";
import { prepareSocketDir, removeStaleSockets, type SocketDir } from "./socket-dir";
import { SlotRoster } from "./slot-roster";
import { WorkerKillSwitches } from "./worker-kill-switches";
import { WorkerProcess } from "./worker-process";
import type { WorkerSlot, SlotHost } from "./worker-slot";
import { switchTarget } from "../resilience/kill-switch";
import type { WorkerState } from "./worker-state";

export type { WorkerPoolEvents } from "./pool-events";
export type { PoolState } from "../client/call-surface";

/** A worker as `health()` reports it. */
export interface WorkerHealth {
  id: string;
  /** The slot's index (`id` is `w<index>`): what per-slot `env`, `args` and `cpuAffinity` were given. */
  index: number;
  pid: number | undefined;
  socket: string;
  state: WorkerState;
  inFlight: number;
  served: number;
  restarts: number;
  lastExit: string | undefined;
  /** Resident memory of the process in MB, undefined when it is not running. */
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
  /** The circuit breakers' circuits (empty without breakers); an operator's `isolateCircuit` shows as `isolated`. */
  circuits: CircuitsHealth;
  /** Warm spares: SERVING, health-checked, out of rotation (`workers` lists only those in rotation). */
  spares: WorkerHealth[];
  /** Autoscaling: the bounds, what is starting, and the last decision. */
  scaling: ScalingHealth;
  /** Methods and services switched off with `switchOff`, sorted. */
  switchedOff: string[];
}

/** The autoscaler as `health()` reports it. */
export interface ScalingHealth {
  /** `fixed` for `workers: <number>`, `auto` for `workers: { min, max }`. */
  mode: "fixed" | "auto";
  min: number;
  max: number;
  /** Warm spares the pool keeps (`spares` option). */
  spares: number;
  /** Workers in rotation that are starting or restarting. */
  starting: number;
  /** The autoscaler's last decision, if any. */
  lastScale: { direction: "up" | "down"; reason: ScaleReason; from: number; to: number; at: string } | undefined;
}

/** A circuit an operator can hold open (`isolateCircuit`) or force closed (`closeCircuit`). */
export type CircuitTarget = { method: string } | { worker: string };

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
 *
 * The pool is a facade: admission (`Admission`: leases, the queue, waiting for a ready worker),
 * the transport of unary calls (pipelined or plain), supervision (`WorkerSlot`: restarts, health,
 * recycling, hangs) and the client surface shared with `RemotePool` (`CallSurface`).
 */
export class WorkerPool extends CallSurface<WorkerPoolEvents> {
  private readonly options: ResolvedPoolOptions;
  private readonly roster: SlotRoster;
  private readonly autoscaler: Autoscaler | undefined;
  private lastScale: ScalingHealth["lastScale"];
  private readonly admission: Admission<WorkerProcess>;
  private readonly watchdog: HangWatchdog<WorkerProcess>;
  private readonly slotHost: SlotHost;
  /** The kill switches as the workers enforce them (for clients calling their sockets directly). */
  private readonly workerSwitches: WorkerKillSwitches;
  /** Open pipelines (transport "pipelined"), one per worker that has served a call. */
  private readonly pipelines = new Map<WorkerProcess, Pipeline>();
  private removeSignalHandlers: (() => void) | undefined;
  private socketDir: SocketDir | undefined;
  /** The shared-memory lane (transport "pipelined", unless turned off), from start() to shutdown. */
  private lane: PipeLane | undefined;
  private shutdownPromise: Promise<void> | undefined;
  private startPromise: Promise<void> | undefined;
  private reloadWatcher: ReloadWatcher | undefined;

  /** Validates options at once: a bad option or a socket path over the Unix limit throws here. */
  constructor(options: WorkerPoolOptions) {
    const resolved = resolvePoolOptions(options);
    super({
      name: "WorkerPool",
      logger: options.logger ?? jsonLogger(resolved.logLevel),
      requestTimeoutMs: resolved.requestTimeoutMs,
      interceptors: options.middleware,
      attemptInterceptors: options.attemptMiddleware,
      resilience: options,
    });
    this.options = resolved;
    this.admission = new Admission<WorkerProcess>(
      {
        workers: () => this.roster.rotation(),
        lease: (worker, release) => {
          this.autoscaler?.observe(this.admission.inFlight + this.admission.queued);
          return this.issueLease(worker, release);
        },
        released: (worker) => this.slots.find((s) => s.id === worker.id)?.onServed(worker),
        dequeued: (event) => this.emitSafely("callDequeued", event),
        queueFull: (event) => this.emitSafely("queueFull", event),
        queuedCall: () => {
          this.autoscaler?.observe(this.admission.inFlight + this.admission.queued);
          this.autoscaler?.poke();
        },
        coldStarting: () => this.roster.coldStarting(),
      },
      resolved,
    );
    this.workerSwitches = new WorkerKillSwitches(this.logger);
    this.watchdog = new HangWatchdog<WorkerProcess>(
      resolved.cancelGraceMs,
      resolved.hardTimeoutMs,
      (worker, deadline) => (worker.channel ? runningHandlers(worker.channel, deadline) : Promise.reject(new Error("no channel"))),
      (call, reason, runningMs) => this.slots.find((s) => s.id === call.worker.id)?.killForHang(call.worker, reason, call.method, call.requestId, runningMs),
    );
    this.slotHost = {
      options: resolved,
      logger: this.logger,
      running: () => this.stateValue === "running",
      createProcess: (id, generation, resources) => {
        const dir = this.socketDir as SocketDir;
        // The lane's variables are always set ("" when off), so none is inherited from this process.
        const laneEnv = this.lane?.workerEnvironment() ?? { PROCGRPC_LANE_DIR: "" };
        // The kill switches in force now are in force in the worker before it takes a call.
        const switches = this.workerSwitches.spawnEnvironment();
        const worker = new WorkerProcess(id, dir.socketPath(id, generation), resolved, this.logger, dir.owned, { ...resources, env: { ...resources.env, ...laneEnv, ...switches.env } }, (proc, deadline) =>
          this.workerSwitches.prepare(proc, deadline),
        );
        this.workerSwitches.spawned(worker, switches.generation);
        worker.lane = this.lane;
        return worker;
      },
      emit: (name, ...args) => this.emitSafely(name, ...args),
      stateChanged: (worker, to) => {
        // A worker that stops taking calls (draining, recycled, unhealthy, stopping) gets its
        // pipeline half-closed: calls already on it are answered, then the stream ends, so an
        // open pipe never holds the worker's graceful stop.
        if (to !== "ready") this.pipelines.get(worker)?.close();
      },
      // A spare is SERVING but takes no calls until it is promoted.
      workerAvailable: (worker) => {
        if (this.roster.slotOf(worker)?.role === "active") this.admission.offer(worker);
      },
      workerGone: (worker) => {
        this.watchdog.forget(worker);
        this.workerSwitches.forget(worker);
        this.lane?.sweepWorker(worker.pid); // lane files it wrote that nobody will read
      },
      counts: () => {
        const rotation = this.slots.filter((s) => s.role === "active");
        return { ready: rotation.filter((s) => s.process.state === "ready").length, total: rotation.length };
      },
      processLost: (slot) => this.roster.processLost(slot),
    };
    const affinitySupported = !portable();
    this.roster = new SlotRoster({
      options: affinitySupported ? resolved : { ...resolved, resources: { ...resolved.resources, cpuAffinity: undefined } },
      logger: this.logger,
      slotHost: this.slotHost,
      running: () => this.stateValue === "running",
      emit: (name, ...args) => {
        if (name === "scale") {
          const e = args[0] as WorkerPoolEvents["scale"][0];
          this.lastScale = { direction: e.direction, reason: e.reason, from: e.from, to: e.to, at: new Date().toISOString() };
        }
        this.emitSafely(name, ...args);
      },
      offer: (worker) => this.admission.offer(worker),
      load: () => {
        const oldest = this.admission.oldestQueuedAt();
        return { queued: this.admission.queued, oldestQueuedMs: oldest === undefined ? 0 : performance.now() - oldest, inFlight: this.admission.inFlight };
      },
      failWaiting: (err) => this.admission.failWaiting(err),
      poke: () => this.autoscaler?.poke(),
    });
    if (!affinitySupported && resolved.resources.cpuAffinity !== undefined) {
      this.logger.warn({ platform: process.platform, portable: process.env.PROCGRPC_PORTABLE === "1" }, "cpuAffinity is not supported on this platform (no sched_setaffinity); workers run unpinned");
    }
    const { scaling } = resolved;
    if (!scaling.fixed) {
      this.autoscaler = new Autoscaler(
        new ScalingPolicy(scaling, resolved.maxInFlightPerWorker, Date.now()),
        {
          snapshot: () => this.roster.snapshot(),
          apply: (decision, seen) => this.roster.apply(decision, seen),
          failed: (err) => this.logger.error({ err: err instanceof Error ? err.message : String(err) }, "autoscaler: a scaling step failed"),
        },
        scaling.intervalMs,
      );
    }
    this.builtIn.killSwitch.listen({
      changed: (target, scope, on) => {
        this.logger.warn({ target, scope, on }, on ? "kill switch: calls flow again" : "kill switch: calls fail fast without reaching a worker");
        this.emitSafely("switched", { target, scope, on });
      },
      refused: (method, target) => this.emitSafely("switchedOffCall", { method, target }),
    });
    // Fail fast on a socket path that cannot be bound, before anything is spawned.
    if (resolved.socketDir) prepareSocketDir(resolved.socketDir, this.slotCapacity());
  }

  /** Most slots the pool can hold at once (slots draining out included): for the socket path check. */
  private slotCapacity(): number {
    const { scaling, spares } = this.options;
    return scaling.fixed ? scaling.max + spares : 2 * scaling.max + spares;
  }

  /** Every slot: in rotation, spares, and those draining out. */
  private get slots(): WorkerSlot[] {
    return this.roster.slots;
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
      this.socketDir = prepareSocketDir(this.options.socketDir, this.slotCapacity());
      if (this.options.transport === "pipelined" && this.options.sharedMemoryLane) this.lane = openPoolLane(this.options.sharedMemoryLane, this.socketDir.path, this.logger);
      const results = await Promise.allSettled(this.roster.createInitial().map((s) => s.startFirst()));
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure) throw failure.reason;
    } catch (err) {
      this.stateValue = "stopped";
      this.workerSwitches.close();
      await Promise.all(this.slots.map((s) => s.stop()));
      this.lane?.close();
      this.socketDir?.remove();
      this.disposeResilience();
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
    this.autoscaler?.start();
    if (this.options.watch) {
      this.reloadWatcher = new ReloadWatcher(this.options.watch, this.options, this.logger, {
        workers: () => this.slots.filter((s) => !s.leaving).map((s) => s.id),
        recycle: (workerId) => this.slotOf(workerId).recycle("reload"),
      });
      await this.reloadWatcher.start();
    }
  }

  /** Admission: a lease on the least-loaded ready worker, waiting in the queue when all are full. */
  protected acquire(call: Call, out: OutgoingCall): Lease | Promise<Lease> {
    return this.admission.acquire({
      method: out.method.path,
      requestId: out.requestId,
      idempotent: out.idempotent,
      deadline: out.deadline,
      signal: out.signal,
      avoid: call.avoidWorkers,
      exclude: call.excludeWorkers,
    });
  }

  /**
   * With the shared-memory lane, a request holding a `bytes` value of at least the lane's
   * threshold is written to its lane file here, from the message's own memory (no serialized
   * copy of it: src/call/message-parts.ts); a pipelined call then sends the file's reference.
   */
  protected override serializeUnaryRequest(out: OutgoingCall, request: unknown): UnaryRequest {
    const lane = this.lane;
    const toParts = out.method.serializeParts;
    if (lane !== undefined && toParts !== undefined) {
      const parts = serializeRequest(out, () => toParts(request, lane.settings.thresholdBytes));
      if (parts !== undefined) {
        const length = partsLength(parts);
        const ref = lane.outgoing(parts, length);
        // No room in the lane (warned once there): the bytes, as for any request.
        return ref ? new LaneRequest(ref, length, lane) : Buffer.concat(parts, length);
      }
    }
    return super.serializeUnaryRequest(out, request);
  }

  /**
   * Runs an admitted unary call with the pool's transport: as a message on the worker's pipeline
   * stream ("pipelined", the default), where a request over `pipelineMaxRequestBytes` still
   * takes its own stream so large messages never hold up small ones; or as its own HTTP/2 stream
   * ("unary"). The hang watchdog follows the call until its handler has ended.
   */
  protected override runUnary(out: OutgoingCall, payload: UnaryRequest, lease: Lease): Promise<unknown> {
    const worker = lease.target as WorkerProcess;
    const watched = this.watchdog.begin(worker, out.callId, out.requestId, out.method.path);
    let running: Promise<unknown>;
    try {
      running = this.usesPipeline(worker, payload) ? this.pipelineOf(worker).call(out, payload, lease) : this.runOwnStream(out, payload, lease);
    } catch (err) {
      discardRequest(payload); // a pipeline that could not be made: the request goes nowhere
      this.watchdog.end(watched);
      throw err;
    }
    return running.then(
      (value) => {
        this.watchdog.end(watched);
        return value;
      },
      (err: unknown) => {
        // Ended on this side (deadline or signal) without the handler's answer: the handler may still run.
        const code = err instanceof RpcError ? err.code() : undefined;
        if ((code === Status.DEADLINE_EXCEEDED || code === Status.CANCELLED) && (err as RpcError).reachedWorker && !worker.exit) this.watchdog.cancelled(watched);
        else this.watchdog.end(watched);
        throw err;
      },
    );
  }

  private usesPipeline(worker: WorkerProcess, payload: UnaryRequest): boolean {
    const length = requestLength(payload);
    return this.options.transport === "pipelined" && worker.channel !== undefined && worker.state === "ready" && (length <= this.options.pipelineMaxRequestBytes || this.lane?.takes(length) === true);
  }

  /** A unary call on its own HTTP/2 stream; a request already in a lane file is read back for it. */
  private runOwnStream(out: OutgoingCall, payload: UnaryRequest, lease: Lease): Promise<unknown> {
    let bytes: Buffer;
    try {
      bytes = requestBytes(payload);
    } catch (err) {
      lease.release();
      return Promise.reject(laneProtocolError(err, callFacts(out, lease.target), false));
    }
    return runUnaryCall(out, bytes, lease);
  }

  private pipelineOf(worker: WorkerProcess): Pipeline {
    let pipeline = this.pipelines.get(worker);
    if (!pipeline || !pipeline.open) {
      // Only a worker spawned for the socket pair (pipelineCarrier "socket-pair") has one.
      const socket = worker.takePipeSocket();
      const created = new Pipeline(
        worker,
        socket ? new SocketPipeStream(socket) : grpcPipeStream(worker.channel as NonNullable<WorkerProcess["channel"]>),
        (closed) => {
          if (this.pipelines.get(worker) === closed) this.pipelines.delete(worker);
        },
        this.lane,
      );
      this.pipelines.set(worker, created);
      pipeline = created;
    }
    return pipeline;
  }

  /**
   * Replaces worker `workerId` (e.g. `"w0"`) gracefully: a new process starts and answers SERVING
   * before the old one stops taking calls; the old one then finishes its in-flight calls and
   * stops. No call fails. Resolves when the old process has exited; rejects when the new one
   * could not start (the old one keeps serving), and with a `RangeError` for an unknown id.
   */
  recycle(workerId: string): Promise<void> {
    try {
      return this.slotOf(workerId).recycle("manual");
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Takes worker `workerId` out of the pool: it gets no new calls, its in-flight calls finish,
   * then it stops and is not replaced (the pool has one worker fewer; `health().total` drops).
   * Resolves when it has exited, then emits `workerDrained`.
   */
  async drain(workerId: string): Promise<void> {
    await this.roster.drain(this.slotOf(workerId));
  }

  /**
   * Switches a method (`/pkg.Service/Method`) or a whole service (`pkg.Service`) off for this
   * pool: its calls fail fast with UNAVAILABLE (category `lifecycle`, `reachedWorker: false`,
   * an ErrorInfo with reason `SWITCHED_OFF`), or are answered by the method's fallback, without
   * reaching a worker; calls already running finish. At once for calls through the pool; the
   * workers enforce it too, for clients calling their sockets directly (the same UNAVAILABLE and
   * ErrorInfo): the promise resolves once every running worker does (workers started later get
   * it before they take calls). It never rejects. Idempotent; `switched` fires on a change.
   * A malformed target, or one of procgrpc's or grpc's internal services, is a `TypeError`.
   */
  switchOff(target: string): Promise<void> {
    const { target: t } = switchTarget(target);
    this.builtIn.killSwitch.switchOff(t);
    this.workerSwitches.add(t);
    return this.workerSwitches.sync();
  }

  /**
   * Switches a method or service back on (see `switchOff`). The workers take calls to it again
   * first; then the pool does, and `switched` fires; the promise resolves then (never rejects).
   * Idempotent.
   */
  switchOn(target: string): Promise<void> {
    const { target: t } = switchTarget(target);
    this.workerSwitches.remove(t);
    return this.workerSwitches.sync().then(() => {
      // Unless it was switched off again meanwhile.
      if (!this.workerSwitches.has(t)) this.builtIn.killSwitch.switchOn(t);
    });
  }

  /**
   * Holds a circuit open until `closeCircuit`, as cockatiel's `isolate()`: a method's calls fail
   * fast (UNAVAILABLE, ErrorInfo `CIRCUIT_OPEN` with `isolated: "true"`; a fallback may answer),
   * a worker gets no calls. Needs the matching breaker (`circuitBreaker.methods` or
   * `.workers`); otherwise, or for an unknown worker, a `RangeError`.
   */
  isolateCircuit(target: CircuitTarget): void {
    if ("method" in target) this.methodCircuits().isolate(methodPath(target.method));
    else this.workerCircuits(target.worker).isolate(target.worker);
  }

  /** Forces a circuit closed (ending an isolation, or a trip) and forgets its failures. */
  closeCircuit(target: CircuitTarget): void {
    if ("method" in target) this.methodCircuits().close(methodPath(target.method));
    else this.workerCircuits(target.worker).close(target.worker);
  }

  private methodCircuits(): NonNullable<typeof this.builtIn.methodBreaker> {
    const breaker = this.builtIn.methodBreaker;
    if (!breaker) throw new RangeError("WorkerPool: no method circuit breaker; enable circuitBreaker.methods to isolate or close method circuits");
    return breaker;
  }

  private workerCircuits(workerId: string): NonNullable<typeof this.builtIn.workerBreaker> {
    const breaker = this.builtIn.workerBreaker;
    if (!breaker) throw new RangeError("WorkerPool: no worker circuit breaker; enable circuitBreaker.workers to isolate or close worker circuits");
    if (!this.slots.some((s) => s.id === workerId)) throw new RangeError(`WorkerPool: no worker ${JSON.stringify(workerId)}; the pool has ${this.slots.map((s) => s.id).join(", ") || "none"}`);
    return breaker;
  }

  private slotOf(workerId: string): WorkerSlot {
    if (this.stateValue !== "running") throw this.lifecycleError();
    const slot = this.slots.find((s) => s.id === workerId);
    if (!slot) throw new RangeError(`WorkerPool: no worker ${JSON.stringify(workerId)}; the pool has ${this.slots.map((s) => s.id).join(", ") || "none"}`);
    if (slot.leaving) throw new RangeError(`WorkerPool: worker ${workerId} is already draining out of the pool`);
    return slot;
  }

  /** A snapshot of every worker, of the queue, of the circuit breakers, of scaling and of the kill switches. */
  health(): PoolHealth {
    const of = (role: SlotRole): WorkerHealth[] => this.slots.filter((s) => s.role === role).map((s) => this.workerHealth(s));
    const workers = of("active");
    const oldest = this.admission.oldestQueuedAt();
    const { scaling, spares } = this.options;
    return {
      state: this.stateValue,
      total: workers.length,
      ready: workers.filter((w) => w.state === "ready").length,
      queued: this.admission.queued,
      oldestQueuedMs: oldest === undefined ? 0 : Math.round(performance.now() - oldest),
      draining: this.slots.reduce((n, s) => n + s.draining, 0),
      failed: this.slots.filter((s) => s.failed).length,
      workers,
      circuits: this.builtIn.circuits(),
      spares: of("spare"),
      scaling: { mode: scaling.fixed ? "fixed" : "auto", min: scaling.min, max: scaling.max, spares, starting: this.roster.snapshot().starting, lastScale: this.lastScale },
      switchedOff: this.builtIn.killSwitch.list(),
    };
  }

  private workerHealth(s: WorkerSlot): WorkerHealth {
    return {
      id: s.id,
      index: s.index,
      pid: s.process.pid,
      socket: s.process.socketPath,
      state: s.process.state,
      inFlight: s.process.inFlight,
      served: s.process.served,
      restarts: s.restarts,
      lastExit: s.lastExit,
      rssMb: s.residentMb(),
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
    this.lane?.close();
    this.socketDir?.remove();
  }

  private async doShutdown(graceMs: number): Promise<void> {
    if (this.stateValue === "new") {
      this.stateValue = "stopped";
      this.disposeResilience();
      return;
    }
    if (this.stateValue === "starting") {
      // start() cleans up after itself on failure; wait for it rather than race it.
      await this.startPromise?.catch(() => undefined);
      if ((this.stateValue as PoolState) === "stopped") return;
    }
    this.stateValue = "stopping";
    this.autoscaler?.stop();
    this.removeSignalHandlers?.();
    await this.reloadWatcher?.stop();
    this.admission.failWaiting(this.lifecycleError());
    await this.waitForIdle(graceMs);
    this.watchdog.stop();
    this.workerSwitches.close();
    for (const pipeline of this.pipelines.values()) pipeline.close();
    await Promise.all(this.slots.map((s) => s.stop()));
    this.lane?.close();
    this.socketDir?.remove();
    this.disposeResilience();
    livePools.delete(this);
    this.stateValue = "stopped";
  }
}

/** A method path from `isolateCircuit`/`closeCircuit` (`/pkg.Service/Method`; the leading `/` optional). */
function methodPath(method: string): string {
  const t = switchTarget(method);
  if (t.scope !== "method") throw new TypeError(`WorkerPool: ${JSON.stringify(method)} is not a method path (/pkg.Service/Method)`);
  return t.target;
}
