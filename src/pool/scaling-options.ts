import { MAX_TIMER_MS } from "../core/deadline";
import { integerOption } from "../core/option-checks";

/**
 * Autoscaling of a pool (`workers: { min, max, … }`): how many workers may be in rotation and
 * what grows or shrinks their number. Scale-up triggers (any that is given counts; with none
 * given, `targetQueueLength: 0`): calls waiting for a free worker (RoadRunner's trigger), the
 * oldest one's wait, or calls in flight per worker (Ray Serve's `target_ongoing_requests`).
 * docs/supervision.md ("Autoscaling") has the rules.
 */
export interface WorkerScalingOptions {
  /** Fewest workers in rotation; `0` scales to zero when idle (the next call waits for a cold start). */
  min: number;
  /** Most workers in rotation. */
  max: number;
  /** Scale up when more calls than this wait for a free worker. Default `0` (any waiting call) when no trigger is given. */
  targetQueueLength?: number;
  /** Scale up when the oldest waiting call has waited longer than this (ms). Default: off. */
  targetQueueWaitMs?: number;
  /**
   * Scale up when calls in flight (plus those waiting) per worker exceed this. Default: off.
   * Also the load one worker is counted for when scaling down (default `maxInFlightPerWorker`).
   */
  targetInFlightPerWorker?: number;
  /** Most workers cold-starting at once for scale-up (the spawn rate's bound). Default 1. */
  spawnRate?: number;
  /**
   * Scale down once the pool's peak load over this long (ms) would have fitted in fewer workers;
   * the workers removed are drained (no new calls, in-flight calls finish, then stop). Default 30000.
   */
  idleTimeoutMs?: number;
  /** How often the triggers are evaluated, ms (a call that has to queue is evaluated at once). Default 100. */
  intervalMs?: number;
}

/** `WorkerScalingOptions` checked, with defaults; a fixed pool has `min === max` and `fixed: true`. */
export interface ResolvedScaling {
  /** A number was given: no autoscaler runs. */
  fixed: boolean;
  min: number;
  max: number;
  targetQueueLength: number | undefined;
  targetQueueWaitMs: number | undefined;
  targetInFlightPerWorker: number | undefined;
  spawnRate: number;
  idleTimeoutMs: number;
  intervalMs: number;
}

const OWNER = "WorkerPool";
const KEYS = new Set(["min", "max", "targetQueueLength", "targetQueueWaitMs", "targetInFlightPerWorker", "spawnRate", "idleTimeoutMs", "intervalMs"]);

/** Checks the `workers` option: a count (a fixed pool) or `{ min, max, … }`. */
export function resolveScaling(workers: number | WorkerScalingOptions | undefined): ResolvedScaling {
  if (workers === undefined || typeof workers === "number") {
    const n = integerOption(OWNER, "workers", workers, 1, { min: 1 });
    return { fixed: true, min: n, max: n, targetQueueLength: undefined, targetQueueWaitMs: undefined, targetInFlightPerWorker: undefined, spawnRate: 1, idleTimeoutMs: 0, intervalMs: 0 };
  }
  if (typeof workers !== "object" || workers === null || Array.isArray(workers)) {
    throw new TypeError(`${OWNER}: workers must be a number or { min, max }, got ${JSON.stringify(workers)}`);
  }
  for (const key of Object.keys(workers)) {
    if (!KEYS.has(key)) throw new TypeError(`${OWNER}: workers.${key} is not an option (known: ${[...KEYS].join(", ")})`);
  }
  if (workers.min === undefined || workers.max === undefined) throw new TypeError(`${OWNER}: workers needs both min and max, got ${JSON.stringify(workers)}`);
  const min = integerOption(OWNER, "workers.min", workers.min, 0);
  const max = integerOption(OWNER, "workers.max", workers.max, 1, { min: 1 });
  if (min > max) throw new RangeError(`${OWNER}: workers.min (${min}) must be <= workers.max (${max})`);
  const optional = (name: "targetQueueLength" | "targetQueueWaitMs" | "targetInFlightPerWorker", least: number): number | undefined =>
    workers[name] === undefined ? undefined : integerOption(OWNER, `workers.${name}`, workers[name], 0, { min: least, max: MAX_TIMER_MS });
  let targetQueueLength = optional("targetQueueLength", 0);
  const targetQueueWaitMs = optional("targetQueueWaitMs", 0);
  const targetInFlightPerWorker = optional("targetInFlightPerWorker", 1);
  if (targetQueueLength === undefined && targetQueueWaitMs === undefined && targetInFlightPerWorker === undefined) targetQueueLength = 0;
  return {
    fixed: false,
    min,
    max,
    targetQueueLength,
    targetQueueWaitMs,
    targetInFlightPerWorker,
    spawnRate: integerOption(OWNER, "workers.spawnRate", workers.spawnRate, 1, { min: 1 }),
    idleTimeoutMs: integerOption(OWNER, "workers.idleTimeoutMs", workers.idleTimeoutMs, 30_000, { min: 1, max: MAX_TIMER_MS }),
    intervalMs: integerOption(OWNER, "workers.intervalMs", workers.intervalMs, 100, { min: 1, max: MAX_TIMER_MS }),
  };
}
