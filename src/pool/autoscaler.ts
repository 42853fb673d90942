import type { ResolvedScaling } from "./scaling-options";

/**
 * Why the pool scaled: `min` (below the floor), `first-call` (no worker at all and a call
 * waiting), `queue-length` / `queue-wait` (calls waiting for a free worker: too many, or too
 * long), `in-flight` (calls per worker above the target), `idle` (the peak load of the last
 * `idleTimeoutMs` fitted in fewer workers).
 */
export type ScaleReason = "min" | "first-call" | "queue-length" | "queue-wait" | "in-flight" | "idle";

/** What the policy is told about the pool at each evaluation. */
export interface ScalingSnapshot {
  /** Workers in rotation (not draining out), in any state. */
  active: number;
  /** Of those, ready to take calls. */
  ready: number;
  /** Of those, starting or restarting: capacity on its way. */
  starting: number;
  /** Calls waiting for a free worker. */
  queued: number;
  /** How long the oldest waiting call has waited, ms. */
  oldestQueuedMs: number;
  /** Calls running on workers. */
  inFlight: number;
}

/** Add or remove `count` workers, and why. */
export interface ScalingDecision {
  direction: "up" | "down";
  count: number;
  reason: ScaleReason;
}

/**
 * The autoscaling policy, with no timers and no processes (the pool executes what it decides;
 * `Autoscaler` asks it on a timer). Scale-up: below `min`; a call waiting with no worker at
 * all; more waiting calls than `targetQueueLength` or the oldest waiting longer than
 * `targetQueueWaitMs`, counting as absorbed the calls that workers already starting will take
 * (`maxInFlightPerWorker` each); or calls (running and waiting) per worker above
 * `targetInFlightPerWorker`. At most `spawnRate` workers start at once and never more than
 * `max` are in rotation. Scale-down: at the end of each `idleTimeoutMs` window (a window
 * restarts with every scale-up), when nothing waits and nothing starts, down to
 * `max(min, ceil(peak / perWorker))`, where `peak` is the highest load (running plus waiting
 * calls) seen in the window and `perWorker` is `targetInFlightPerWorker`, else
 * `maxInFlightPerWorker`: so the workers left could have carried the window's peak without a
 * call waiting, and a scale-down never triggers the next scale-up by itself.
 */
export class ScalingPolicy {
  private windowStart: number;
  private peak = 0;

  constructor(
    private readonly options: ResolvedScaling,
    private readonly maxInFlightPerWorker: number,
    now: number,
  ) {
    this.windowStart = now;
  }

  /** Records the load now (calls running plus waiting), for the window's peak. */
  observe(load: number): void {
    if (load > this.peak) this.peak = load;
  }

  /** The decision for `snapshot` at `now`, if any. */
  decide(snapshot: ScalingSnapshot, now: number): ScalingDecision | undefined {
    this.observe(snapshot.inFlight + snapshot.queued);
    const up = this.upDecision(snapshot);
    if (up) {
      this.restartWindow(now, snapshot);
      return up;
    }
    return this.downDecision(snapshot, now);
  }

  private upDecision(s: ScalingSnapshot): ScalingDecision | undefined {
    const { min, max, spawnRate, targetQueueLength, targetQueueWaitMs, targetInFlightPerWorker } = this.options;
    const room = Math.min(max - s.active, spawnRate - s.starting);
    if (room <= 0) return undefined;
    const up = (count: number, reason: ScaleReason): ScalingDecision => ({ direction: "up", count: Math.max(1, Math.min(count, room)), reason });
    if (s.active < min) return up(min - s.active, "min");
    if (s.active === 0 && s.queued > 0) return up(1, "first-call");
    const perWorker = this.maxInFlightPerWorker;
    const pending = s.queued - s.starting * perWorker;
    if (targetQueueLength !== undefined && pending > targetQueueLength) return up(Math.ceil(pending / perWorker), "queue-length");
    if (targetQueueWaitMs !== undefined && pending > 0 && s.oldestQueuedMs > targetQueueWaitMs) return up(Math.ceil(pending / perWorker), "queue-wait");
    if (targetInFlightPerWorker !== undefined) {
      const desired = Math.ceil((s.inFlight + s.queued) / targetInFlightPerWorker);
      if (desired > s.active) return up(desired - s.active, "in-flight");
    }
    return undefined;
  }

  private downDecision(s: ScalingSnapshot, now: number): ScalingDecision | undefined {
    if (now - this.windowStart < this.options.idleTimeoutMs) return undefined;
    const peak = this.peak;
    this.restartWindow(now, s);
    if (s.starting > 0 || s.queued > 0) return undefined;
    const perWorker = this.options.targetInFlightPerWorker ?? this.maxInFlightPerWorker;
    const desired = Math.max(this.options.min, Math.ceil(peak / perWorker));
    if (desired >= s.active) return undefined;
    return { direction: "down", count: s.active - desired, reason: "idle" };
  }

  private restartWindow(now: number, s: ScalingSnapshot): void {
    this.windowStart = now;
    this.peak = s.inFlight + s.queued;
  }
}

/** What the autoscaler needs of its pool. */
export interface AutoscalerHost {
  /** The pool now. */
  snapshot(): ScalingSnapshot;
  /** Carries out a decision (the pool's mechanism: start or promote workers, drain workers). */
  apply(decision: ScalingDecision, snapshot: ScalingSnapshot): void;
  /** `apply` threw: the autoscaler keeps running. */
  failed(err: unknown): void;
}

/**
 * Runs a `ScalingPolicy`: every `intervalMs` (timers unref'd), and soon after a `poke()` (a call
 * had to queue, a worker became ready), it takes a snapshot, asks the policy, and hands a
 * decision to the host. Pokes in the same turn of the event loop are evaluated once.
 */
export class Autoscaler {
  private timer: NodeJS.Timeout | undefined;
  private poked: NodeJS.Immediate | undefined;
  private running = false;

  constructor(
    private readonly policy: ScalingPolicy,
    private readonly host: AutoscalerHost,
    private readonly intervalMs: number,
  ) {}

  /** Starts evaluating on the interval. */
  start(): void {
    this.running = true;
    this.timer = setInterval(() => this.evaluate(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops evaluating (shutdown). */
  stop(): void {
    this.running = false;
    clearInterval(this.timer);
    if (this.poked) clearImmediate(this.poked);
    this.poked = undefined;
  }

  /** Evaluates soon (once for every poke of this turn). */
  poke(): void {
    if (!this.running || this.poked) return;
    this.poked = setImmediate(() => {
      this.poked = undefined;
      this.evaluate();
    });
  }

  /** Records the load now, for the idle window's peak (between evaluations). */
  observe(load: number): void {
    this.policy.observe(load);
  }

  private evaluate(): void {
    if (!this.running) return;
    try {
      const snapshot = this.host.snapshot();
      const decision = this.policy.decide(snapshot, Date.now());
      if (decision) this.host.apply(decision, snapshot);
    } catch (err) {
      this.host.failed(err);
    }
  }
}
