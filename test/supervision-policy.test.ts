import { RecyclePolicy } from "../src/pool/recycle-policy";
import { RestartPolicy } from "../src/pool/restart-policy";
import { resolvePoolOptions } from "../src/pool/options";

const restart = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, maxRestarts: 3, windowMs: 10000 };

test("restart backoff grows by the multiplier up to the cap, with equal jitter", () => {
  const low = new RestartPolicy(restart, () => 0);
  const high = new RestartPolicy(restart, () => 1);
  const lows = [0, 1, 2].map((i) => low.next(i).delayMs);
  const highs = [0, 1, 2].map((i) => high.next(i).delayMs);
  expect(lows).toEqual([50, 100, 200]);
  expect(highs).toEqual([100, 200, 400]);
});

test("more than maxRestarts within windowMs is a crash loop, retried at maxDelayMs; old restarts age out", () => {
  const p = new RestartPolicy(restart, () => 1);
  expect([0, 1, 2].map((t) => p.next(t).crashLoop)).toEqual([false, false, false]);
  expect(p.next(3)).toEqual({ delayMs: 1000, restartsInWindow: 4, crashLoop: true });
  // Long after the window, it starts over.
  expect(p.next(20000)).toEqual({ delayMs: 100, restartsInWindow: 1, crashLoop: false });
});

test("recycle: the request limit is lowered by up to the jitter; memory over the limit recycles", () => {
  expect(new RecyclePolicy(1000, 0, 0.1, () => 0).requestLimit).toBe(1000);
  expect(new RecyclePolicy(1000, 0, 0.1, () => 1).requestLimit).toBe(900);
  const p = new RecyclePolicy(100, 200, 0, () => 0.5);
  expect(p.check(99, 150)).toBeUndefined();
  expect(p.check(100, 150)).toBe("requests");
  expect(p.check(5, 201)).toBe("memory");
  expect(new RecyclePolicy(0, 0, 0.1).check(1e9, 1e9)).toBeUndefined();
});

test("bad supervision options are refused with the option's name", () => {
  const base = { script: "w.py" };
  expect(() => resolvePoolOptions({ ...base, restart: { initialDelayMs: 500, maxDelayMs: 100 } })).toThrow(/restart.maxDelayMs \(100\) must be >= restart.initialDelayMs \(500\)/);
  expect(() => resolvePoolOptions({ ...base, healthCheckIntervalMs: 0 })).toThrow(/healthCheckIntervalMs must be an integer between 10 and 2147483647, got 0/);
  expect(() => resolvePoolOptions({ ...base, recycleJitter: 2 })).toThrow(/recycleJitter must be a number between 0 and 0.9/);
  expect(resolvePoolOptions(base)).toMatchObject({ cancelGraceMs: 2000, hardTimeoutMs: 0, unhealthyAfterMisses: 3, restart: { initialDelayMs: 50, maxDelayMs: 5000, multiplier: 2, maxRestarts: 5, windowMs: 60000 } });
});
