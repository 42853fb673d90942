import type { Logger } from "../core/logger";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { ScalingDecision, ScalingSnapshot } from "./autoscaler";
import type { ResolvedPoolOptions } from "./options";
import type { SlotRole, WorkerPoolEvents } from "./pool-events";
import { slotResources, type SlotResources } from "./slot-resources";
import type { WorkerProcess } from "./worker-process";
import { WorkerSlot, type SlotHost } from "./worker-slot";

/** What the roster needs of its pool. */
export interface RosterHost {
  readonly options: ResolvedPoolOptions;
  readonly logger: Logger;
  readonly slotHost: SlotHost;
  /** True while the pool is `running`. */
  running(): boolean;
  emit<K extends keyof WorkerPoolEvents>(name: K, ...args: WorkerPoolEvents[K]): void;
  /** Hands capacity on `worker` to waiting calls. */
  offer(worker: WorkerProcess): void;
  /** The queue and the calls running now. */
  load(): { queued: number; oldestQueuedMs: number; inFlight: number };
  /** Fails every waiting call (nothing can serve them). */
  failWaiting(err: Error): void;
  /** Something changed that the autoscaler should look at. */
  poke(): void;
}

/**
 * The pool's slots and their places: which are in rotation (`active`) and which are warm
 * spares, the index (and id, `w<index>`) of each — the lowest index no live slot holds, so a
 * new slot never takes the id of one that still has a process — and the mechanism that carries
 * out scaling: cold starts and spare promotions for a scale-up, drains for a scale-down, a spare
 * in place of a worker that died, spares kept at their count. What to do and when is the
 * autoscaler's (`autoscaler.ts`); this only does it.
 */
export class SlotRoster {
  /** Every slot, by index: active, spares, and slots draining out of the pool. */
  readonly slots: WorkerSlot[] = [];

  constructor(private readonly host: RosterHost) {}

  /** Slots in rotation that are not draining out, by index. */
  active(): WorkerSlot[] {
    return this.slots.filter((s) => s.role === "active" && !s.leaving);
  }

  /** Warm spares that are not draining out, by index. */
  spares(): WorkerSlot[] {
    return this.slots.filter((s) => s.role === "spare" && !s.leaving);
  }

  /** The current processes of the slots in rotation (draining ones included: they take no calls). */
  rotation(): WorkerProcess[] {
    return this.slots.filter((s) => s.role === "active").map((s) => s.process);
  }

  /** The slot whose current process is `worker`. */
  slotOf(worker: WorkerProcess): WorkerSlot | undefined {
    return this.slots.find((s) => s.process === worker);
  }

  /** A new slot at the lowest free index (not started). Throws when a per-slot option function fails. */
  create(role: SlotRole, resources?: SlotResources): WorkerSlot {
    const index = this.nextIndex();
    const id = `w${index}`;
    const slot = new WorkerSlot(id, this.host.slotHost, { index, role, resources: resources ?? slotResources(this.host.options.resources, { index, id }) });
    const at = this.slots.findIndex((s) => s.index > index);
    this.slots.splice(at === -1 ? this.slots.length : at, 0, slot);
    return slot;
  }

  /** The lowest index no slot holds (the next slot's). */
  private nextIndex(): number {
    const used = new Set(this.slots.map((s) => s.index));
    let index = 0;
    while (used.has(index)) index++;
    return index;
  }

  /** The slots `start()` begins with: `workers` in rotation, then the spares. */
  createInitial(): WorkerSlot[] {
    const { workers, spares, resources } = this.host.options;
    // Every slot's options first: a function that throws or gives a wrong shape fails start()
    // before any slot (and its process object) exists.
    const given = Array.from({ length: workers + spares }, (_, index) => slotResources(resources, { index, id: `w${index}` }));
    given.forEach((r, i) => this.create(i < workers ? "active" : "spare", r));
    return [...this.slots];
  }

  /** The pool for the autoscaler. */
  snapshot(): ScalingSnapshot {
    const active = this.active();
    const states = active.map((s) => s.process.state);
    return {
      active: active.length,
      ready: states.filter((s) => s === "ready").length,
      starting: states.filter((s) => s === "starting" || s === "restarting").length,
      ...this.host.load(),
    };
  }

  /** True while a slot added for capacity is starting its first process. */
  coldStarting(): boolean {
    return this.active().some((s) => !s.everReady && s.process.state === "starting");
  }

  /** Carries out an autoscaler decision. */
  apply(decision: ScalingDecision, seen: ScalingSnapshot): void {
    if (!this.host.running()) return;
    const from = this.active().length;
    const facts = { queued: seen.queued, oldestQueuedMs: Math.round(seen.oldestQueuedMs), inFlight: seen.inFlight };
    if (decision.direction === "up") {
      const promoted = this.readySpares().slice(0, decision.count);
      const started: WorkerSlot[] = [];
      for (let i = promoted.length; i < decision.count; i++) {
        try {
          started.push(this.create("active"));
        } catch (err) {
          // A per-slot option function threw or gave a wrong shape: no slot was made for it.
          this.host.logger.error({ err: (err as Error).message }, "could not add a worker for a scale-up");
          this.host.emit("scaleFailed", { workerId: `w${this.nextIndex()}`, error: (err as Error).message });
          break;
        }
      }
      if (promoted.length + started.length === 0) return;
      const workerIds = [...promoted, ...started].map((s) => s.id);
      this.host.emit("scale", { direction: "up", reason: decision.reason, from, to: from + workerIds.length, workerIds, ...facts });
      for (const spare of promoted) this.promote(spare, undefined);
      for (const slot of started) this.startAdded(slot);
      this.replenishSpares();
      return;
    }
    const chosen = this.drainCandidates().slice(0, decision.count);
    if (chosen.length === 0) return;
    this.host.emit("scale", { direction: "down", reason: decision.reason, from, to: from - chosen.length, workerIds: chosen.map((s) => s.id), ...facts });
    for (const slot of chosen) {
      this.drain(slot).catch((err: unknown) => this.host.logger.error({ workerId: slot.id, err: (err as Error).message }, "scale-down drain failed"));
    }
  }

  /**
   * The current process of active `slot` died: a ready spare takes its place at once and `slot`
   * restarts as the spare (so the number of spares stays, and the replacement starts in the background).
   */
  processLost(slot: WorkerSlot): void {
    if (slot.role !== "active" || slot.leaving || !this.host.running()) return;
    const spare = this.readySpares()[0];
    if (!spare) return;
    slot.role = "spare";
    this.promote(spare, slot.id);
  }

  /**
   * Takes `slot` out of the pool: no new calls, in-flight calls finish, its processes stop; then
   * it leaves the roster and `workerDrained` fires. Spares are topped up again afterwards.
   */
  async drain(slot: WorkerSlot): Promise<void> {
    const pid = slot.process.pid;
    await slot.drain();
    const i = this.slots.indexOf(slot);
    if (i !== -1) this.slots.splice(i, 1);
    this.host.emit("workerDrained", { workerId: slot.id, pid, remaining: this.active().length });
    if (this.host.running()) {
      this.replenishSpares();
      this.host.poke();
    }
  }

  /** Starts spares until there are `spares` of them (any state: a restarting spare counts). */
  replenishSpares(): void {
    while (this.host.running() && this.spares().length < this.host.options.spares) {
      let slot: WorkerSlot;
      try {
        slot = this.create("spare");
      } catch (err) {
        this.host.logger.error({ err: (err as Error).message }, "could not add a spare worker");
        return;
      }
      this.startAdded(slot);
    }
  }

  private readySpares(): WorkerSlot[] {
    return this.spares().filter((s) => s.process.state === "ready");
  }

  private promote(spare: WorkerSlot, replaced: string | undefined): void {
    spare.role = "active";
    this.host.emit("sparePromoted", { workerId: spare.id, pid: spare.process.pid, replaced, reason: replaced === undefined ? "scale-up" : "worker-exit" });
    this.host.offer(spare.process);
  }

  /** Active slots to drain first: those not serving (restarting, failed), then the least busy, then the highest index. */
  private drainCandidates(): WorkerSlot[] {
    const rank = (s: WorkerSlot): number => (s.process.state === "ready" ? 1 : 0);
    return this.active().sort((a, b) => rank(a) - rank(b) || a.process.inFlight - b.process.inFlight || b.index - a.index);
  }

  /** Starts a slot added while the pool runs; a start that fails is retried by the slot's restart policy. */
  private startAdded(slot: WorkerSlot): void {
    slot.startFirst().then(
      () => {
        if (!this.host.running() || slot.leaving) return;
        slot.activate();
        this.host.poke();
      },
      (err: unknown) => {
        if (!this.host.running() || slot.leaving) return;
        const message = (err as Error).message.split("\n")[0];
        this.host.logger.error({ workerId: slot.id, role: slot.role, err: message }, "a worker added to the pool did not start; retrying with the restart backoff");
        this.host.emit("scaleFailed", { workerId: slot.id, error: message });
        // Calls waiting for this cold start (the pool had no worker ready) learn now rather than later.
        if (this.active().every((s) => s.process.state !== "ready") && !this.coldStarting()) {
          this.host.failWaiting(new RpcError({ code: Status.UNAVAILABLE, details: `no healthy workers available: worker ${slot.id} did not start (${message})`, category: "lifecycle", reachedWorker: false }));
        }
      },
    );
  }
}
