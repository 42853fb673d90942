/** The autoscaling policy (src/pool/autoscaler.ts) and its runner, with fake timers: pure logic, no processes. */
import { Autoscaler, ScalingPolicy, type ScalingDecision, type ScalingSnapshot } from "../../src/pool/autoscaler";
import { resolveScaling } from "../../src/pool/scaling-options";
import type { WorkerScalingOptions } from "../../src";

const snap = (over: Partial<ScalingSnapshot> = {}): ScalingSnapshot => ({ active: 1, ready: 1, starting: 0, queued: 0, oldestQueuedMs: 0, inFlight: 0, ...over });
const policy = (options: WorkerScalingOptions, maxInFlightPerWorker = 4) => new ScalingPolicy(resolveScaling(options), maxInFlightPerWorker, 0);

describe("resolveScaling", () => {
  test("a number is a fixed pool", () => {
    expect(resolveScaling(3)).toMatchObject({ fixed: true, min: 3, max: 3 });
    expect(resolveScaling(undefined)).toMatchObject({ fixed: true, min: 1, max: 1 });
  });
  test("{min,max} defaults to the queue-length trigger at 0", () => {
    expect(resolveScaling({ min: 0, max: 4 })).toMatchObject({ fixed: false, min: 0, max: 4, targetQueueLength: 0, targetQueueWaitMs: undefined, targetInFlightPerWorker: undefined, spawnRate: 1, idleTimeoutMs: 30_000, intervalMs: 100 });
    expect(resolveScaling({ min: 1, max: 4, targetInFlightPerWorker: 2 }).targetQueueLength).toBeUndefined();
  });
  test("bad input is a clear error", () => {
    expect(() => resolveScaling({ min: 5, max: 2 })).toThrow(/min \(5\) must be <= workers.max \(2\)/);
    expect(() => resolveScaling({ min: 1 } as WorkerScalingOptions)).toThrow(/needs both min and max/);
    expect(() => resolveScaling({ min: 1, max: 2, spawnrate: 2 } as unknown as WorkerScalingOptions)).toThrow(/workers.spawnrate is not an option/);
    expect(() => resolveScaling({ min: 0, max: 0 })).toThrow(/workers.max/);
    expect(() => resolveScaling({ min: -1, max: 2 })).toThrow(/workers.min/);
    expect(() => resolveScaling(0)).toThrow(/workers/);
    expect(() => resolveScaling("2" as unknown as number)).toThrow(/workers/);
  });
});

describe("ScalingPolicy scale-up", () => {
  test("below min it starts workers up to the spawn rate", () => {
    expect(policy({ min: 3, max: 5, spawnRate: 2 }).decide(snap({ active: 0, ready: 0 }), 0)).toEqual({ direction: "up", count: 2, reason: "min" });
  });
  test("from zero the first waiting call starts one worker", () => {
    expect(policy({ min: 0, max: 4, spawnRate: 4 }).decide(snap({ active: 0, ready: 0, queued: 1 }), 0)).toEqual({ direction: "up", count: 1, reason: "first-call" });
    expect(policy({ min: 0, max: 4 }).decide(snap({ active: 0, ready: 0 }), 0)).toBeUndefined();
  });
  test("queueing beyond the target scales up, counting what starting workers will absorb", () => {
    const p = policy({ min: 1, max: 8, spawnRate: 3 });
    expect(p.decide(snap({ queued: 1, inFlight: 4 }), 0)).toEqual({ direction: "up", count: 1, reason: "queue-length" });
    expect(p.decide(snap({ queued: 9, inFlight: 4 }), 0)).toEqual({ direction: "up", count: 3, reason: "queue-length" });
    // One worker starting takes 4 of the 4 waiting calls: nothing more to start.
    expect(p.decide(snap({ active: 2, starting: 1, queued: 4, inFlight: 4 }), 0)).toBeUndefined();
  });
  test("the spawn rate bounds workers starting at once, max bounds the rotation", () => {
    const p = policy({ min: 1, max: 3, spawnRate: 2 });
    expect(p.decide(snap({ active: 3, starting: 2, queued: 50 }), 0)).toBeUndefined();
    expect(p.decide(snap({ active: 2, starting: 1, queued: 50 }), 0)).toEqual({ direction: "up", count: 1, reason: "queue-length" });
    expect(p.decide(snap({ active: 3, queued: 50 }), 0)).toBeUndefined();
  });
  test("queue wait: only once the oldest call waited longer than the target", () => {
    const p = policy({ min: 1, max: 4, targetQueueWaitMs: 50 });
    expect(p.decide(snap({ queued: 2, oldestQueuedMs: 10 }), 0)).toBeUndefined();
    expect(p.decide(snap({ queued: 2, oldestQueuedMs: 60 }), 0)).toEqual({ direction: "up", count: 1, reason: "queue-wait" });
  });
  test("in flight per worker above the target scales up before anything queues", () => {
    const p = policy({ min: 1, max: 8, targetInFlightPerWorker: 2, spawnRate: 8 });
    expect(p.decide(snap({ active: 2, ready: 2, inFlight: 4 }), 0)).toBeUndefined();
    expect(p.decide(snap({ active: 2, ready: 2, inFlight: 7 }), 0)).toEqual({ direction: "up", count: 2, reason: "in-flight" });
  });
});

describe("ScalingPolicy scale-down", () => {
  test("after an idle window it drains down to what the window's peak needed, never below min", () => {
    const p = policy({ min: 1, max: 6, idleTimeoutMs: 1000 }, 4);
    expect(p.decide(snap({ active: 6, ready: 6, inFlight: 9 }), 0)).toBeUndefined();
    expect(p.decide(snap({ active: 6, ready: 6, inFlight: 1 }), 999)).toBeUndefined();
    // Peak 9 in the window: three workers of 4 carry it.
    expect(p.decide(snap({ active: 6, ready: 6, inFlight: 1 }), 1000)).toEqual({ direction: "down", count: 3, reason: "idle" });
    // The next window's peak was 1: down to min.
    expect(p.decide(snap({ active: 3, ready: 3 }), 2000)).toEqual({ direction: "down", count: 2, reason: "idle" });
    expect(p.decide(snap({ active: 1, ready: 1 }), 3000)).toBeUndefined();
  });
  test("a scale-up restarts the window; waiting or starting workers block a scale-down", () => {
    const p = policy({ min: 0, max: 4, idleTimeoutMs: 1000 }, 1);
    expect(p.decide(snap({ active: 1, queued: 1, inFlight: 1 }), 500)?.direction).toBe("up");
    expect(p.decide(snap({ active: 2, ready: 2 }), 1400)).toBeUndefined();
    expect(p.decide(snap({ active: 2, ready: 1, starting: 1 }), 1500)).toBeUndefined();
    expect(p.decide(snap({ active: 2, ready: 2 }), 2500)).toEqual({ direction: "down", count: 2, reason: "idle" });
  });
  test("load observed between evaluations counts for the peak", () => {
    const p = policy({ min: 1, max: 4, idleTimeoutMs: 1000 }, 1);
    p.observe(3);
    expect(p.decide(snap({ active: 4, ready: 4 }), 1000)).toEqual({ direction: "down", count: 1, reason: "idle" });
  });
});

describe("Autoscaler", () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function run(options: WorkerScalingOptions, snapshots: () => ScalingSnapshot) {
    const decisions: ScalingDecision[] = [];
    const errors: unknown[] = [];
    const scaler = new Autoscaler(new ScalingPolicy(resolveScaling(options), 1, Date.now()), { snapshot: snapshots, apply: (d) => decisions.push(d), failed: (e) => errors.push(e) }, resolveScaling(options).intervalMs);
    return { scaler, decisions, errors };
  }

  test("evaluates on its interval and at once after a poke (pokes of one turn once), not after stop", () => {
    let s = snap({ active: 1, ready: 1 });
    let evaluations = 0;
    const { scaler, decisions } = run({ min: 1, max: 3, intervalMs: 100, idleTimeoutMs: 10_000 }, () => (evaluations++, s));
    scaler.start();
    jest.advanceTimersByTime(250);
    expect(evaluations).toBe(2);
    s = snap({ active: 1, ready: 1, queued: 2, inFlight: 1 });
    scaler.poke();
    scaler.poke();
    jest.advanceTimersByTime(0);
    jest.runOnlyPendingTimers();
    expect(decisions[0]).toEqual({ direction: "up", count: 1, reason: "queue-length" });
    const before = evaluations;
    scaler.stop();
    scaler.poke();
    jest.advanceTimersByTime(1000);
    expect(evaluations).toBe(before);
  });

  test("a failing step is reported and the autoscaler keeps running", () => {
    let calls = 0;
    const { scaler, errors } = run({ min: 1, max: 2, intervalMs: 10 }, () => {
      calls += 1;
      if (calls === 1) throw new Error("boom");
      return snap();
    });
    scaler.start();
    jest.advanceTimersByTime(30);
    expect(errors).toHaveLength(1);
    expect(calls).toBe(3);
    scaler.stop();
  });
});
