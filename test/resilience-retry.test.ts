/**
 * Retries against real workers that produce the failures: transient codes, a worker killed
 * mid-call, RetryInfo and pushback from the servicer, attempt timeouts under one overall
 * deadline, and the retry budget stopping a storm.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ExponentialBackoff, Status, WorkerPool, type RetryEvent, type RetryStopEvent, type UnaryMiddleware } from "../src";
import { ResilienceTestServiceDefinition } from "../src/gen/testing/v1/resilience";
import { eventually } from "./helpers/env";
import { flakyCount, flakyTotal, ledger, rejection, resiliencePool, stateDir } from "./helpers/resilience";

const dir = stateDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let keys = 0;
const key = (): string => `k${++keys}`;

/** A client middleware that records when and where each attempt was handed to a worker. */
function dispatchLog(): { middleware: UnaryMiddleware; entries: { at: number; workerId: string }[] } {
  const entries: { at: number; workerId: string }[] = [];
  const middleware: UnaryMiddleware = (call, next) =>
    next({
      ...call,
      onDispatch: (workerId) => {
        entries.push({ at: Date.now(), workerId });
        call.onDispatch?.(workerId);
      },
    });
  return { middleware, entries };
}

describe("retry with backoff, against real workers", () => {
  const backoff = { initialDelayMs: 100, maxDelayMs: 400, multiplier: 2 };
  // No budget here: these tests fail on purpose often enough to exhaust one (tested below).
  const pool = new WorkerPool(resiliencePool({ workers: 2, retry: { maxAttempts: 4, ...backoff, budget: false } }));
  const client = pool.client(ResilienceTestServiceDefinition);
  const retries: { at: number; event: RetryEvent }[] = [];
  const stops: RetryStopEvent[] = [];
  pool.resilience.on("retry", (event) => retries.push({ at: Date.now(), event }));
  pool.resilience.on("retryStop", (event) => stops.push(event));
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());
  beforeEach(() => {
    retries.length = 0;
    stops.length = 0;
  });

  test("a servicer failing its first 3 calls with UNAVAILABLE succeeds on the 4th, each delay inside the backoff bound, each retry on another worker", async () => {
    const log = dispatchLog();
    const logged = pool.client(ResilienceTestServiceDefinition, { middleware: [log.middleware] });
    const k = key();
    const reply = await logged.flaky({ key: k, stateDir: dir, failFirst: 3 }, { timeoutMs: 10000 });
    expect(reply.attempt).toBe(4);
    expect(flakyCount(dir, k)).toBe(4);
    expect(retries.map((r) => r.event.attempt)).toEqual([1, 2, 3]);
    expect(log.entries).toHaveLength(4);
    const bounds = new ExponentialBackoff(backoff);
    retries.forEach(({ at, event }, i) => {
      expect(event.delaySource).toBe("backoff");
      expect(event.error.code()).toBe(Status.UNAVAILABLE);
      // Full jitter: uniform in [0, bound]; bounds 100, 200, 400.
      expect(event.delayMs).toBeGreaterThanOrEqual(0);
      expect(event.delayMs).toBeLessThanOrEqual(bounds.bound(i + 1));
      const gap = log.entries[i + 1].at - at;
      expect(gap).toBeGreaterThanOrEqual(event.delayMs - 1); // timers may fire up to 1 ms early
      expect(gap).toBeLessThanOrEqual(bounds.bound(i + 1) + 250); // the bound, plus scheduling slack on a loaded machine
    });
    // The retry after a failure on one worker goes to the other.
    expect(log.entries[1].workerId).not.toBe(log.entries[0].workerId);
  });

  test.each([
    ["RESOURCE_EXHAUSTED", Status.RESOURCE_EXHAUSTED],
    ["ABORTED", Status.ABORTED],
  ])("%s is retried", async (_name, code) => {
    const k = key();
    const reply = await client.flaky({ key: k, stateDir: dir, failFirst: 1, code });
    expect(reply.attempt).toBe(2);
  });

  test.each([
    ["INVALID_ARGUMENT", Status.INVALID_ARGUMENT],
    ["NOT_FOUND", Status.NOT_FOUND],
    ["PERMISSION_DENIED", Status.PERMISSION_DENIED],
    ["FAILED_PRECONDITION", Status.FAILED_PRECONDITION],
    ["INTERNAL", Status.INTERNAL],
    ["UNIMPLEMENTED", Status.UNIMPLEMENTED],
  ])("%s is never retried", async (_name, code) => {
    const k = key();
    const err = await rejection(client.flaky({ key: k, stateDir: dir, failFirst: 1, code }));
    expect(err.code()).toBe(code);
    expect(err.attempts).toBe(1);
    expect(err.attemptCodes).toEqual([code]);
    expect(flakyCount(dir, k)).toBe(1);
    expect(retries).toHaveLength(0);
  });

  test("retries exhausted: the final error carries every attempt's code", async () => {
    const k = key();
    const err = await rejection(client.flaky({ key: k, stateDir: dir, failFirst: -1 }, { retry: { initialDelayMs: 1, maxDelayMs: 1 } }));
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.attempts).toBe(4);
    expect(err.attemptCodes).toEqual([Status.UNAVAILABLE, Status.UNAVAILABLE, Status.UNAVAILABLE, Status.UNAVAILABLE]);
    expect(flakyCount(dir, k)).toBe(4);
    expect(stops.map((s) => s.reason)).toEqual(["max-attempts"]);
  });

  test("retry: false on the call turns retries off; retry: { maxAttempts } on the call overrides the pool", async () => {
    const off = key();
    expect((await rejection(client.flaky({ key: off, stateDir: dir, failFirst: 1 }, { retry: false }))).attempts).toBe(1);
    expect(flakyCount(dir, off)).toBe(1);
    const two = key();
    const err = await rejection(client.flaky({ key: two, stateDir: dir, failFirst: -1 }, { retry: { maxAttempts: 2, initialDelayMs: 1 } }));
    expect(err.attempts).toBe(2);
    expect(flakyCount(dir, two)).toBe(2);
  });

  test("RetryInfo from procgrpc.errors.Unavailable(retry_after=0.3) sets the delay", async () => {
    const log = dispatchLog();
    const logged = pool.client(ResilienceTestServiceDefinition, { middleware: [log.middleware] });
    const reply = await logged.flaky({ key: key(), stateDir: dir, failFirst: 1, retryAfterMs: 300 });
    expect(reply.attempt).toBe(2);
    expect(retries).toHaveLength(1);
    expect(retries[0].event.delaySource).toBe("retry-info");
    expect(retries[0].event.delayMs).toBe(300);
    expect(log.entries[1].at - retries[0].at).toBeGreaterThanOrEqual(299);
  });

  test("RetryInfo on RESOURCE_EXHAUSTED (ResourceExhausted(retry_after=...)) sets the delay too", async () => {
    const reply = await client.flaky({ key: key(), stateDir: dir, failFirst: 1, code: Status.RESOURCE_EXHAUSTED, retryAfterMs: 150 });
    expect(reply.attempt).toBe(2);
    expect(retries.map((r) => [r.event.delaySource, r.event.delayMs])).toEqual([["retry-info", 150]]);
  });

  test("grpc-retry-pushback-ms sets the delay; a negative pushback stops retrying", async () => {
    const log = dispatchLog();
    const logged = pool.client(ResilienceTestServiceDefinition, { middleware: [log.middleware] });
    const reply = await logged.flaky({ key: key(), stateDir: dir, failFirst: 1, pushbackMs: 250 });
    expect(reply.attempt).toBe(2);
    expect(retries.map((r) => [r.event.delaySource, r.event.delayMs])).toEqual([["pushback", 250]]);
    expect(log.entries[1].at - retries[0].at).toBeGreaterThanOrEqual(249);

    const k = key();
    const err = await rejection(client.flaky({ key: k, stateDir: dir, failFirst: 1, pushbackMs: -1 }));
    expect(err.attempts).toBe(1);
    expect(flakyCount(dir, k)).toBe(1);
    expect(stops.at(-1)?.reason).toBe("pushback");
  });

  test("per-attempt timeout: an idempotent method is retried after an attempt times out, a non-idempotent one is not", async () => {
    const idem = await rejection(client.lookup({ ms: 2000 }, { timeoutMs: 20000, retry: { perAttemptTimeoutMs: 150, maxAttempts: 3, initialDelayMs: 1 } }));
    expect(idem.code()).toBe(Status.DEADLINE_EXCEEDED);
    expect(idem.attempts).toBe(3);
    expect(idem.attemptCodes).toEqual([Status.DEADLINE_EXCEEDED, Status.DEADLINE_EXCEEDED, Status.DEADLINE_EXCEEDED]);
    const plain = await rejection(client.charge({ ms: 2000 }, { timeoutMs: 20000, retry: { perAttemptTimeoutMs: 150 } }));
    expect(plain.code()).toBe(Status.DEADLINE_EXCEEDED);
    expect(plain.attempts).toBe(1);
    expect(stops.at(-1)?.reason).toBe("unsafe");
  });

  test("one overall deadline spans every attempt: attempts stop when it passes, and the error names the caller's limit", async () => {
    const err = await rejection(client.lookup({ ms: 5000 }, { timeoutMs: 500, retry: { perAttemptTimeoutMs: 300, maxAttempts: 10, initialDelayMs: 1, maxDelayMs: 1 } }));
    expect(err.code()).toBe(Status.DEADLINE_EXCEEDED);
    expect(err.timeoutKind).toBe("per-call");
    expect(err.attempts).toBeGreaterThanOrEqual(1);
    expect(err.attempts).toBeLessThanOrEqual(2); // 300 ms, then what is left of 500 ms
  });

  test("a non-idempotent call is not retried after its worker is killed mid-call; an idempotent one is, on another worker", async () => {
    const charges = join(dir, "charge-ledger");
    const plain = rejection(client.charge({ ms: 30000, key: "charge", ledgerPath: charges }, { timeoutMs: 40000 }));
    expect(await eventually(() => ledger(charges).length === 1, 10000)).toBe(true);
    const victim = Number(ledger(charges)[0].split(" ")[2]);
    process.kill(victim, "SIGKILL");
    const err = await plain;
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.category).toBe("connection");
    expect(err.reachedWorker).toBe(true);
    expect(err.attempts).toBe(1);
    expect(ledger(charges)).toHaveLength(1); // never sent again
    expect(stops.at(-1)?.reason).toBe("unsafe");

    await eventually(() => pool.health().ready === 2, 15000);
    const lookups = join(dir, "lookup-ledger");
    const idem = client.lookup({ ms: 3000, key: "lookup", ledgerPath: lookups }, { timeoutMs: 40000 });
    expect(await eventually(() => ledger(lookups).length === 1, 10000)).toBe(true);
    const killed = Number(ledger(lookups)[0].split(" ")[2]);
    process.kill(killed, "SIGKILL");
    const reply = await idem;
    expect(reply.workerPid).not.toBe(killed);
    // Usually exactly one retry; on a loaded machine the pool may briefly have no ready worker
    // (restarts, health checks), and the retry of that is also safe: it never reached a worker.
    expect(ledger(lookups).length).toBeGreaterThanOrEqual(2);
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries[0].event.error.category).toBe("connection");

    // `idempotent: true` on the call makes a non-idempotent method retryable too.
    await eventually(() => pool.health().ready === 2, 15000);
    const declared = join(dir, "declared-ledger");
    const forced = client.charge({ ms: 3000, key: "declared", ledgerPath: declared }, { timeoutMs: 40000, idempotent: true });
    expect(await eventually(() => ledger(declared).length === 1, 10000)).toBe(true);
    process.kill(Number(ledger(declared)[0].split(" ")[2]), "SIGKILL");
    expect((await forced).workerPid).not.toBe(Number(ledger(declared)[0].split(" ")[2]));
    expect(ledger(declared)).toHaveLength(2);
  });
});

describe("retries only when asked", () => {
  const pool = new WorkerPool(resiliencePool({ workers: 1 }));
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("a pool without `retry` does not retry, but a client's defaults.retry or a call's retry turns it on", async () => {
    const plain = pool.client(ResilienceTestServiceDefinition);
    const k1 = key();
    expect((await rejection(plain.flaky({ key: k1, stateDir: dir, failFirst: 1 }))).attempts).toBe(1);
    expect(flakyCount(dir, k1)).toBe(1);
    const k2 = key();
    expect((await plain.flaky({ key: k2, stateDir: dir, failFirst: 1 }, { retry: true })).attempt).toBe(2);
    const retrying = pool.client(ResilienceTestServiceDefinition, { defaults: { retry: { maxAttempts: 3, initialDelayMs: 1 } } });
    const k3 = key();
    expect((await retrying.flaky({ key: k3, stateDir: dir, failFirst: 2 })).attempt).toBe(3);
    const k4 = key();
    expect((await rejection(retrying.flaky({ key: k4, stateDir: dir, failFirst: 2 }, { retry: false }))).attempts).toBe(1);
  });

  test("a client's methods option rejects a name the service does not have (a type error, and at run time)", () => {
    // @ts-expect-error: per-method defaults are keyed by the service's method names.
    expect(() => pool.client(ResilienceTestServiceDefinition, { methods: { nope: { retry: true } } })).toThrow(/methods\.nope is not a method of the service/);
  });
});

describe("the retry budget", () => {
  const pool = new WorkerPool(resiliencePool({ workers: 2, retry: { maxAttempts: 5, initialDelayMs: 1, maxDelayMs: 1, budget: { maxTokens: 10, tokenRatio: 0.1 } } }));
  const client = pool.client(ResilienceTestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("stops a retry storm: once half the tokens are gone, failing calls are not retried", async () => {
    const budgetDir = stateDir();
    try {
      for (let i = 0; i < 50; i++) await rejection(client.flaky({ key: `storm${i}`, stateDir: budgetDir, failFirst: -1 }));
      // Without a budget: 50 × 5 = 250 calls. With it: the first call uses 5 attempts
      // (tokens 10 → 5), then every call fails once (5 is not more than half of 10).
      expect(flakyTotal(budgetDir)).toBe(54);
      expect(pool.resilience.counters().retriesThrottled).toBe(49);
      // Successes refill the bucket (0.1 each, from 0) and retries resume once a failure leaves more than 5.
      for (let i = 0; i < 70; i++) await client.flaky({ key: `ok${i}`, stateDir: budgetDir, failFirst: 0 });
      expect((await client.flaky({ key: "recovered", stateDir: budgetDir, failFirst: 1 })).attempt).toBe(2);
    } finally {
      rmSync(budgetDir, { recursive: true, force: true });
    }
  });
});
