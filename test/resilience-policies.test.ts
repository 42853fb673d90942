/**
 * Circuit breakers, hedging and fallbacks against real workers: a worker that keeps dropping its
 * connections (os._exit mid-call), a method that keeps failing, a copy that is slow on one worker
 * and fast on another, and degraded answers that are logged and counted.
 */
import { rmSync, unlinkSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { Status, WorkerPool, isCircuitOpen, jsonLogger, type CircuitStateEvent, type HedgeSettledEvent } from "../src";
import { ResilienceTestServiceDefinition } from "../src/gen/testing/v1/resilience";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually } from "./helpers/env";
import { flakyCount, rejection, resiliencePool, stateDir } from "./helpers/resilience";

const dir = stateDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("per-worker circuit breaker", () => {
  const pool = new WorkerPool(resiliencePool({ workers: 2, circuitBreaker: { workers: { consecutiveFailures: 2, halfOpenAfterMs: 3000 } } }));
  const client = pool.client(ResilienceTestServiceDefinition);
  const changes: CircuitStateEvent[] = [];
  pool.resilience.on("circuitStateChange", (e) => changes.push(e));
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("opens on a worker that keeps dropping connections, keeps it out of rotation while open, and closes after it recovers", async () => {
    const sick = join(dir, "w1-sick");
    writeFileSync(sick, "");
    const request = { sickWorker: "w1", sickFlagPath: sick };
    const failures: string[] = [];
    // Calls land on both workers; each one on w1 kills it (the pool restarts it).
    const opened = await eventually(() => changes.some((c) => c.key === "w1" && c.to === "open"), 0);
    expect(opened).toBe(false);
    const until = Date.now() + 40000;
    while (!changes.some((c) => c.key === "w1" && c.to === "open") && Date.now() < until) {
      await client.drop(request, { timeoutMs: 5000 }).catch((e: Error) => failures.push(e.message));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(changes.filter((c) => c.scope === "worker")).toEqual([{ scope: "worker", key: "w1", from: "closed", to: "open", reason: "2 failures in a row" }]);
    expect(failures.length).toBeGreaterThanOrEqual(2);
    // w1 comes back (restarted) but stays out of rotation while its circuit is open: every call goes to w0.
    expect(await eventually(() => pool.health().workers[1].state === "ready", 20000)).toBe(true);
    const served: string[] = [];
    while (changes.at(-1)?.to === "open" && served.length < 10) served.push((await client.drop(request)).workerId);
    expect(served.length).toBeGreaterThan(0);
    expect(new Set(served)).toEqual(new Set(["w0"]));

    // The worker recovers; after halfOpenAfterMs a probe goes to it and closes the circuit.
    unlinkSync(sick);
    const seen = new Set<string>();
    const deadline = Date.now() + 30000;
    while (!(changes.at(-1)?.to === "closed" && seen.has("w1")) && Date.now() < deadline) {
      seen.add((await client.drop(request)).workerId);
      await new Promise((r) => setTimeout(r, 20));
    }
    const w1 = changes.filter((c) => c.key === "w1").map((c) => `${c.from}->${c.to}`);
    expect(w1.slice(-2)).toEqual(["open->half-open", "half-open->closed"]);
    expect(seen.has("w1")).toBe(true);
    expect(pool.resilience.counters().circuitsOpened).toBeGreaterThanOrEqual(1);
  });

  test("permanent errors never count against a worker", async () => {
    const before = changes.length;
    for (let i = 0; i < 6; i++) {
      const err = await rejection(client.flaky({ key: `perm${i}`, stateDir: dir, failFirst: 1, code: Status.INVALID_ARGUMENT }));
      expect(err.code()).toBe(Status.INVALID_ARGUMENT);
    }
    expect(changes.length).toBe(before);
  });
});

describe("per-method circuit breaker", () => {
  const pool = new WorkerPool(resiliencePool({ workers: 2, circuitBreaker: { methods: { consecutiveFailures: 3, halfOpenAfterMs: 500 } } }));
  const client = pool.client(ResilienceTestServiceDefinition);
  const changes: CircuitStateEvent[] = [];
  pool.resilience.on("circuitStateChange", (e) => changes.push(e));
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("opens after repeated failures, fails fast without reaching a worker, and closes when a half-open probe succeeds", async () => {
    const path = "/testing.v1.ResilienceTestService/Flaky";
    // Caller mistakes do not count.
    for (let i = 0; i < 5; i++) await rejection(client.flaky({ key: `bad${i}`, stateDir: dir, failFirst: 1, code: Status.INVALID_ARGUMENT }));
    expect(changes).toEqual([]);
    for (let i = 0; i < 3; i++) expect((await rejection(client.flaky({ key: "down", stateDir: dir, failFirst: -1 }))).category).toBe("worker");
    expect(changes).toEqual([{ scope: "method", key: path, from: "closed", to: "open", reason: "3 failures in a row" }]);

    const err = await rejection(client.flaky({ key: "down", stateDir: dir, failFirst: -1 }));
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.category).toBe("lifecycle");
    expect(err.reachedWorker).toBe(false);
    expect(err.retryable).toBe(false);
    expect(err.details()).toMatch(/circuit open for \/testing\.v1\.ResilienceTestService\/Flaky/);
    expect(isCircuitOpen(err)).toBe(true);
    expect(flakyCount(dir, "down")).toBe(3); // the rejected call never reached Python
    expect(pool.resilience.counters().circuitRejections).toBe(1);
    // Other methods are not affected.
    expect((await client.lookup({ ms: 0 })).workerId).toMatch(/^w[01]$/);
    // A fallback answers for an open circuit.
    const degraded = await client.flaky({ key: "down", stateDir: dir, failFirst: -1 }, { fallback: () => ({ attempt: -1, workerPid: 0 }) });
    expect(degraded.attempt).toBe(-1);

    expect(await eventually(() => changes.at(-1)?.to === "half-open", 5000)).toBe(true);
    expect((await client.flaky({ key: "healed", stateDir: dir, failFirst: 0 })).attempt).toBe(1);
    expect(changes.map((c) => `${c.from}->${c.to}`)).toEqual(["closed->open", "open->half-open", "half-open->closed"]);
    expect(changes[2].reason).toBe("probe succeeded");
  });
});

describe("hedging", () => {
  const pool = new WorkerPool(resiliencePool({ workers: 2, hedge: { delayMs: 200, maxAttempts: 2 } }));
  const client = pool.client(ResilienceTestServiceDefinition);
  const testing = pool.client(TestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  async function cancelledTagsOf(pid: number): Promise<string[]> {
    // Stats goes to either worker; ask until the slow one answers.
    for (let i = 0; i < 50; i++) {
      const stats = await testing.stats({});
      if (stats.workerPid === pid) return stats.cancelledTags;
    }
    throw new Error(`worker ${pid} never answered Stats`);
  }

  test("a NO_SIDE_EFFECTS call is hedged: the fast worker's answer wins and the slow worker sees the cancellation", async () => {
    const settled: HedgeSettledEvent[] = [];
    pool.resilience.on("hedgeSettled", (e) => settled.push(e));
    const reply = await client.hedge({ tag: "nse", stateDir: dir, slowMs: 20000 }, { timeoutMs: 30000 });
    // Whichever copy reached Python first is the slow one (usually the first sent).
    expect(settled).toHaveLength(1);
    expect(settled[0]).toMatchObject({ method: "/testing.v1.ResilienceTestService/Hedge", sent: 2, cancelled: 1 });
    const cancelFile = join(dir, "cancelled");
    expect(await eventually(() => existsSync(cancelFile) && readFileSync(cancelFile, "utf8").includes("nse "), 5000)).toBe(true);
    const slowPid = Number(readFileSync(cancelFile, "utf8").split("\n").find((l) => l.startsWith("nse "))?.split(" ")[1]);
    expect(reply.workerPid).not.toBe(slowPid);
    expect(await cancelledTagsOf(slowPid)).toContain("nse");
  });

  test("hedge per call on a method without the marking; a fast first answer sends no copy; hedge: false turns it off", async () => {
    const before = pool.resilience.counters().hedges;
    const quick = await client.hedge({ tag: "quick", stateDir: dir, slowMs: 0 }, { hedge: { delayMs: 5000 } });
    expect(quick.workerId).toMatch(/^w[01]$/);
    expect(pool.resilience.counters().hedges).toBe(before);
    // Charge is not marked; the caller asks (and vouches that a copy is harmless).
    const charged = await client.charge({ ms: 0 }, { hedge: { delayMs: 50 } });
    expect(charged.workerId).toMatch(/^w[01]$/);
    // On a loaded machine that call may take over 50 ms and send its copy: count from here.
    const beforeOff = pool.resilience.counters().hedges;
    const off = client.hedge({ tag: "off", stateDir: dir, slowMs: 400 }, { hedge: false });
    expect((await off).workerId).toMatch(/^w[01]$/);
    expect(pool.resilience.counters().hedges).toBe(beforeOff);
  });
});

describe("fallbacks", () => {
  const lines: string[] = [];
  const pool = new WorkerPool(resiliencePool({ workers: 1, logger: jsonLogger("warn", (l) => lines.push(l)), retry: { maxAttempts: 2, initialDelayMs: 1 } }));
  const client = pool.client(ResilienceTestServiceDefinition, { methods: { flaky: { fallback: () => ({ attempt: 0, workerPid: -1 }) } } });
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("a per-method fallback answers after retries are exhausted; the use is logged and counted", async () => {
    const events: unknown[] = [];
    pool.resilience.on("fallback", (e) => events.push(e));
    const reply = await client.flaky({ key: "fb", stateDir: dir, failFirst: -1 });
    expect(reply).toEqual({ attempt: 0, workerPid: -1 });
    expect(flakyCount(dir, "fb")).toBe(2); // the retry ran first
    expect(pool.resilience.counters().fallbacks).toBe(1);
    expect(events).toHaveLength(1);
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "call failed; answering with its fallback");
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ method: "/testing.v1.ResilienceTestService/Flaky", code: Status.UNAVAILABLE, attempts: 2 });
  });

  test("a per-call fallback wins over the method's; a permanent error is never replaced", async () => {
    expect((await client.flaky({ key: "fb2", stateDir: dir, failFirst: -1 }, { fallback: () => ({ attempt: 7, workerPid: 7 }) })).attempt).toBe(7);
    const err = await rejection(client.flaky({ key: "fb3", stateDir: dir, failFirst: -1, code: Status.INVALID_ARGUMENT }));
    expect(err.code()).toBe(Status.INVALID_ARGUMENT);
    expect(pool.resilience.counters().fallbacks).toBe(2);
  });
});
