import { HealthMonitor, type HealthCheckResult } from "./health-monitor";
import type { Logger } from "../core/logger";
import type { ResolvedPoolOptions } from "./options";
import type { HangReason, SlotRole, WorkerPoolEvents } from "./pool-events";
import { RecyclePolicy, type RecycleReason } from "./recycle-policy";
import { residentMemoryMb } from "./resident-memory";
import { RestartPolicy } from "./restart-policy";
import type { SlotResources } from "./slot-resources";
import { describeExit } from "../transport/call-target";
import type { WorkerProcess } from "./worker-process";
import type { WorkerExit, WorkerState } from "./worker-state";

/** What a slot needs from its pool. */
export interface SlotHost {
  readonly options: ResolvedPoolOptions;
  readonly logger: Logger;
  /** True while the pool is `running` (not starting, stopping or stopped). */
  running(): boolean;
  /** Creates (does not start) the process for `generation` of slot `id`, with the slot's resources. */
  createProcess(id: string, generation: number, resources: SlotResources): WorkerProcess;
  emit<K extends keyof WorkerPoolEvents>(name: K, ...args: WorkerPoolEvents[K]): void;
  /** A process of this pool changed state (before listeners hear of it): the pool's own reactions. */
  stateChanged(worker: WorkerProcess, to: WorkerState): void;
  /** `worker` is ready (again) and can take queued calls. */
  workerAvailable(worker: WorkerProcess): void;
  /** `worker` is gone: stop watching its calls. */
  workerGone(worker: WorkerProcess): void;
  /** Ready and total workers, for event payloads. */
  counts(): { ready: number; total: number };
  /**
   * The current process of `slot` died unexpectedly and will be restarted: the pool may put a
   * warm spare in its place (the slot then restarts as a spare).
   */
  processLost?(slot: WorkerSlot): void;
}

/** Where a slot sits in the pool and what its processes get. */
export interface SlotPlacement {
  /** Its index (0, 1, …): `id` is `w<index>`; per-slot options were given it. */
  index: number;
  role: SlotRole;
  resources: SlotResources;
}

/**
 * One logical worker of the pool (`w0`, `w1`, …) and its supervision: the current process, its
 * health monitor, restarts with backoff and crash-loop detection, graceful replacement (recycle
 * by calls or memory, replacement of an unhealthy worker) and kills for hangs. The id stays;
 * processes come and go (docs/supervision.md has the state machine).
 */
export class WorkerSlot {
  /** The process that takes this slot's calls (or the one being restarted). */
  process: WorkerProcess;
  /** Restarts after unexpected exits (not recycles). */
  restarts = 0;
  /** How the last process that died unexpectedly ended. */
  lastExit: string | undefined;
  /** Crash-looping: more than `restart.maxRestarts` within `restart.windowMs`. */
  failed = false;
  /** In rotation (`active`), or a warm spare kept SERVING out of rotation. */
  role: SlotRole;
  /** The slot's index (its id is `w<index>`). */
  readonly index: number;
  /** True once a process of this slot has been SERVING. */
  everReady = false;
  private readonly resources: SlotResources;
  private generation = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private replacement: WorkerProcess | undefined;
  private unhealthySince: number | undefined;
  private readonly retiring = new Set<WorkerProcess>();
  private readonly stopping = new WeakSet<WorkerProcess>();
  private readonly killedFor = new WeakMap<WorkerProcess, string>();
  private readonly monitors = new Map<WorkerProcess, HealthMonitor>();
  private readonly recyclePolicies = new WeakMap<WorkerProcess, RecyclePolicy>();
  private readonly rss = new WeakMap<WorkerProcess, number>();
  /** Retiring processes waiting for their last call to end. */
  private readonly drained = new Map<WorkerProcess, () => void>();
  /** Processes draining before they stop, and when each will have stopped. */
  private readonly retirements = new Map<WorkerProcess, Promise<void>>();
  /** The recycle under way, if any. */
  private recycling: Promise<void> | undefined;
  /** The slot is draining out of the pool: no restarts, no recycles. */
  private retired = false;
  private readonly restartPolicy: RestartPolicy;

  constructor(
    readonly id: string,
    private readonly host: SlotHost,
    placement: SlotPlacement,
  ) {
    this.index = placement.index;
    this.role = placement.role;
    this.resources = placement.resources;
    this.restartPolicy = new RestartPolicy(host.options.restart);
    this.process = this.spawn();
  }

  /** Processes being replaced and still draining. */
  get draining(): number {
    return this.retiring.size;
  }

  /** Resident memory of the current process, MB (read now from /proc). */
  residentMb(): number | undefined {
    return residentMemoryMb(this.process.exit ? undefined : this.process.pid);
  }

  /** Starts the first process; resolves when it is SERVING (the pool then calls `activate`). */
  startFirst(): Promise<void> {
    return this.process.start();
  }

  /** The current process takes calls: health monitoring begins and `workerReady` fires. */
  activate(proc: WorkerProcess = this.process): void {
    const monitor = new HealthMonitor(proc, this.host.options.healthCheckIntervalMs, this.host.options.healthCheckTimeoutMs, (r) => this.onHealth(proc, r));
    this.monitors.set(proc, monitor);
    monitor.start();
    this.everReady = true;
    this.host.emit("workerReady", { workerId: this.id, pid: proc.pid, socket: proc.socketPath, role: this.role });
    this.host.workerAvailable(proc);
  }

  /** A call on `proc` finished: a retiring process may now stop; the current one recycles at its request limit. */
  onServed(proc: WorkerProcess): void {
    if (proc.inFlight === 0) this.drained.get(proc)?.();
    if (proc !== this.process) return;
    if (this.recyclePolicies.get(proc)?.check(proc.served, undefined) === "requests") this.recycleQuietly("requests");
  }

  /** Kills `proc` because a handler will not stop; it is replaced at once (no backoff). */
  killForHang(proc: WorkerProcess, reason: HangReason, method: string, requestId: string, runningMs: number): void {
    if (proc.exit || this.killedFor.has(proc)) return;
    this.killedFor.set(proc, `${reason} on ${method}`);
    this.host.emit("workerHung", { workerId: this.id, pid: proc.pid, reason, method, requestId, runningMs });
    this.host.logger.warn({ workerId: this.id, pid: proc.pid, reason, method, requestId, runningMs }, "handler will not stop; killing the worker");
    proc.kill();
  }

  /**
   * Graceful replacement: a new process is started and SERVING before the current one stops
   * taking calls; the old one then drains its in-flight calls and is stopped. Resolves when the
   * old process has exited; rejects when the replacement could not start (the old one keeps
   * serving) or there is nothing to replace. A recycle already under way is joined.
   */
  recycle(reason: RecycleReason): Promise<void> {
    if (this.recycling) return this.recycling;
    if (this.retired) return Promise.reject(new Error(`worker ${this.id} is draining out of the pool; it cannot be recycled`));
    if (!this.host.running() || this.process.exit || this.process.state === "starting") {
      return Promise.reject(new Error(`worker ${this.id} is ${this.process.state}; only a running worker can be recycled`));
    }
    const old = this.process;
    const next = this.spawn();
    this.replacement = next;
    this.host.logger.info({ workerId: this.id, pid: old.pid, reason, served: old.served, rssMb: this.rss.get(old) }, "recycling worker");
    const done = next.start().then(
      async () => {
        this.replacement = undefined;
        if (!this.host.running() || this.retired) {
          this.stopping.add(next);
          await next.stop();
          return;
        }
        this.process = next;
        this.unhealthySince = undefined;
        this.activate(next);
        if (!old.exit) {
          this.host.emit("workerRecycled", { workerId: this.id, oldPid: old.pid, newPid: next.pid, reason });
          await this.retire(old);
        }
      },
      (err: unknown) => {
        this.replacement = undefined;
        this.host.logger.error({ workerId: this.id, reason, err: (err as Error).message }, "replacement worker failed to start");
        // The old process died while its replacement was starting: restart the usual way.
        if (old.exit && this.process === old && this.host.running()) this.scheduleRestart(old);
        throw err;
      },
    );
    this.recycling = done.finally(() => {
      this.recycling = undefined;
    });
    return this.recycling;
  }

  /** `recycle` for the pool's own policies (requests, memory, health): failures are logged there, never thrown. */
  private recycleQuietly(reason: RecycleReason): void {
    this.recycle(reason).catch(() => undefined);
  }

  /**
   * Takes this slot out of the pool: its process takes no new calls, its in-flight calls finish,
   * then it stops and is not restarted. Resolves when every process of the slot has exited.
   */
  async drain(): Promise<void> {
    this.retired = true;
    clearTimeout(this.restartTimer);
    await this.recycling?.catch(() => undefined);
    const procs = [this.process, ...this.retiring].filter((p) => !p.exit);
    await Promise.all(procs.map((p) => (this.retiring.has(p) ? this.drainedOf(p) : this.retire(p))));
  }

  /** True once `drain()` began: the slot is leaving the pool. */
  get leaving(): boolean {
    return this.retired;
  }

  /** Stops every process of this slot (SIGTERM, SIGKILL after `killTimeoutMs`). */
  async stop(): Promise<void> {
    clearTimeout(this.restartTimer);
    for (const m of this.monitors.values()) m.stop();
    this.monitors.clear();
    const procs = [this.process, ...this.retiring, ...(this.replacement ? [this.replacement] : [])];
    await Promise.all(
      procs.map(async (p) => {
        this.stopping.add(p);
        if (!p.exit) p.state = "draining";
        await p.stop();
        p.state = "stopped";
      }),
    );
  }

  /** SIGKILLs every process of this slot synchronously (the Node process is exiting). */
  killNow(): void {
    clearTimeout(this.restartTimer);
    for (const m of this.monitors.values()) m.stop();
    for (const p of [this.process, ...this.retiring, ...(this.replacement ? [this.replacement] : [])]) p.kill();
  }

  private spawn(): WorkerProcess {
    const proc = this.host.createProcess(this.id, this.generation++, this.resources);
    const { maxRequestsPerWorker, maxMemoryMb, recycleJitter } = this.host.options;
    this.recyclePolicies.set(proc, new RecyclePolicy(maxRequestsPerWorker, maxMemoryMb, recycleJitter));
    proc.onStateChange((from, to) => {
      this.host.stateChanged(proc, to);
      this.host.emit("workerState", { workerId: this.id, pid: proc.pid, from, to });
    });
    proc.onExit((exit) => this.handleExit(proc, exit));
    return proc;
  }

  /** Resolves when a retiring process has exited. */
  private drainedOf(proc: WorkerProcess): Promise<void> {
    return this.retirements.get(proc) ?? Promise.resolve();
  }

  private retire(old: WorkerProcess): Promise<void> {
    const running = this.retirements.get(old) ?? this.doRetire(old).finally(() => this.retirements.delete(old));
    this.retirements.set(old, running);
    return running;
  }

  private async doRetire(old: WorkerProcess): Promise<void> {
    this.stopping.add(old);
    this.monitors.get(old)?.stop();
    this.monitors.delete(old);
    old.state = "draining";
    this.retiring.add(old);
    // Every call has a deadline and the hang watchdog bounds what runs past it, so this ends.
    if (old.inFlight > 0 && !old.exit) {
      await new Promise<void>((resolve) => this.drained.set(old, resolve));
      this.drained.delete(old);
    }
    await old.stop();
    old.state = "stopped";
    this.retiring.delete(old);
  }

  private handleExit(proc: WorkerProcess, exit: WorkerExit): void {
    this.drained.get(proc)?.();
    this.monitors.get(proc)?.stop();
    this.monitors.delete(proc);
    this.host.workerGone(proc);
    const expected = !this.host.running() || this.stopping.has(proc) || this.retired;
    this.host.emit("workerExit", { workerId: this.id, pid: proc.pid, code: exit.code, signal: exit.signal, stderrTail: proc.stderr, expected });
    if (expected || proc !== this.process) {
      proc.state = "stopped";
      return;
    }
    const killedFor = this.killedFor.get(proc);
    this.lastExit = describeExit(exit) + (killedFor ? ` (killed by the pool: ${killedFor})` : "");
    this.host.logger.warn({ workerId: this.id, pid: proc.pid, exit: this.lastExit, stderrTail: proc.stderr.slice(-5) }, "worker exited unexpectedly; restarting");
    // A replacement is already starting (recycle): it takes over when SERVING.
    if (this.replacement) {
      proc.state = "restarting";
      return;
    }
    this.host.processLost?.(this);
    this.scheduleRestart(proc);
  }

  private scheduleRestart(dead: WorkerProcess): void {
    const hung = this.killedFor.has(dead);
    let delayMs = 0;
    if (!hung) {
      // A kill for a hang is the pool's doing, not a crash: no backoff, not counted as a crash loop.
      const decision = this.restartPolicy.next(Date.now());
      delayMs = decision.delayMs;
      if (decision.crashLoop) {
        dead.state = "failed";
        if (!this.failed) {
          this.failed = true;
          this.host.logger.error({ workerId: this.id, restartsInWindow: decision.restartsInWindow }, "worker is crash-looping; retrying at the maximum backoff");
          this.host.emit("degraded", { workerId: this.id, restartsInWindow: decision.restartsInWindow, ...this.host.counts() });
        }
      }
    }
    if (dead.state !== "failed") dead.state = "restarting";
    this.restarts += 1;
    this.host.emit("workerRestart", { workerId: this.id, attempt: this.restarts, delayMs, reason: hung ? "hang" : "exit" });
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => this.respawn(), delayMs);
  }

  private respawn(): void {
    if (!this.host.running()) return;
    const proc = this.spawn();
    this.process = proc;
    this.unhealthySince = undefined;
    proc.start().then(
      () => {
        if (!this.host.running() || this.process !== proc) return;
        this.activate(proc);
        if (this.failed) {
          this.failed = false;
          this.host.emit("recovered", { workerId: this.id, pid: proc.pid, ...this.host.counts() });
        }
      },
      (err: unknown) => {
        // Its exit has already scheduled the next attempt (handleExit).
        this.lastExit = (err as Error).message.split("\n")[0];
      },
    );
  }

  private onHealth(proc: WorkerProcess, result: HealthCheckResult): void {
    if (proc !== this.process || proc.exit) return;
    const { unhealthyAfterMisses, replaceUnhealthyAfterMs } = this.host.options;
    if (result.status === "SERVING") {
      if (proc.state === "unhealthy") {
        this.unhealthySince = undefined;
        proc.state = "ready";
        this.host.emit("workerHealthy", { workerId: this.id, pid: proc.pid });
        this.host.workerAvailable(proc);
      }
    } else if (result.status !== "miss" || result.misses >= unhealthyAfterMisses) {
      if (proc.state === "ready") {
        this.unhealthySince = Date.now();
        proc.state = "unhealthy";
        const reason = result.status === "miss" ? "missed-checks" : "not-serving";
        this.host.logger.warn({ workerId: this.id, pid: proc.pid, reason, misses: result.misses }, "worker is unhealthy; no new calls");
        this.host.emit("workerUnhealthy", { workerId: this.id, pid: proc.pid, reason, misses: result.misses });
      }
    }
    if (proc.state === "unhealthy" && this.unhealthySince !== undefined && Date.now() - this.unhealthySince >= replaceUnhealthyAfterMs) {
      this.recycleQuietly("unhealthy");
    }
    if (this.host.options.maxMemoryMb > 0) {
      const rss = residentMemoryMb(proc.pid);
      if (rss !== undefined) this.rss.set(proc, rss);
      if (proc.state === "ready" && this.recyclePolicies.get(proc)?.check(0, rss) === "memory") this.recycleQuietly("memory");
    }
  }
}

