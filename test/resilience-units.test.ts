/** Pure logic of the resilience policies: backoff bounds, the budget, circuits, the dead-letter log. */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CircuitBreaker, ExponentialBackoff, JsonlDeadLetterStore, RetryBudget, type DeadLetter } from "../src";

const tmp = mkdtempSync(join(tmpdir(), "pgu-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test("full-jitter backoff: bounds grow by the multiplier up to the cap, delays stay inside them", () => {
  const b = new ExponentialBackoff({ initialDelayMs: 100, maxDelayMs: 1000, multiplier: 3 });
  expect([1, 2, 3, 4].map((n) => b.bound(n))).toEqual([100, 300, 900, 1000]);
  expect(new ExponentialBackoff({}, () => 0.999999).delay(1)).toBe(100);
  expect(new ExponentialBackoff({}, () => 0).delay(5)).toBe(0);
  expect(() => new ExponentialBackoff({ multiplier: 0.5 })).toThrow(/multiplier must be a number >= 1/);
});

test("retry budget: retries allowed only while more than half the tokens remain", () => {
  const budget = new RetryBudget({ maxTokens: 4, tokenRatio: 0.5 });
  budget.onFailure();
  expect(budget.canRetry()).toBe(true); // 3 > 2
  budget.onFailure();
  expect(budget.canRetry()).toBe(false); // 2 is not > 2
  budget.onSuccess();
  expect(budget.canRetry()).toBe(true); // 2.5
});

test("circuit: the failure ratio over the window opens it; half-open lets exactly one probe through", async () => {
  const changes: string[] = [];
  jest.useFakeTimers();
  const c = new CircuitBreaker({ consecutiveFailures: 0, failureRatio: 0.5, minimumCalls: 4, halfOpenAfterMs: 50 }, (from, to) => changes.push(`${from}->${to}`));
  c.onSuccess();
  c.onFailure();
  c.onSuccess();
  expect(c.state).toBe("closed"); // 3 calls: below minimumCalls
  c.onFailure();
  expect(c.state).toBe("open"); // 2 of 4
  expect(c.tryAcquire()).toBe(false);
  jest.advanceTimersByTime(50);
  expect(c.state).toBe("half-open");
  expect(c.tryAcquire()).toBe(true);
  expect(c.tryAcquire()).toBe(false);
  c.onSuccess();
  expect(changes).toEqual(["closed->open", "open->half-open", "half-open->closed"]);
  jest.useRealTimers();
});

function letter(id: string): DeadLetter {
  return { id, method: "/a.B/C", request: "", requestJson: {}, code: 3, codeName: "INVALID_ARGUMENT", details: "d", category: "worker", attempts: 1, firstFailureAt: "2020-01-01T00:00:00.000Z", lastFailureAt: "2020-01-01T00:00:00.000Z", replays: 0 };
}

test("JSON-lines store: a line torn by a crash is skipped and never swallows the next append; compact rewrites without removed letters", async () => {
  const path = join(tmp, "torn.jsonl");
  const store = new JsonlDeadLetterStore(path);
  await store.add(letter("a"));
  appendFileSync(path, '{"op":"add","letter":{"id":"torn"'); // a crash mid-write
  await store.add(letter("b"));
  expect((await store.list()).map((l) => l.id)).toEqual(["a", "b"]);
  expect(store.skippedLines).toBe(1);
  await store.recordFailure("a", { code: 14, codeName: "UNAVAILABLE", details: "again", category: "worker", attempts: 2, at: "2020-01-02T00:00:00.000Z" });
  expect(await store.get("a")).toMatchObject({ code: 14, attempts: 3, replays: 1, lastFailureAt: "2020-01-02T00:00:00.000Z" });
  expect(await store.remove("b")).toBe(true);
  expect(await store.remove("b")).toBe(false);
  await store.compact();
  expect(readFileSync(path, "utf8").trim().split("\n")).toHaveLength(1);
  expect((await new JsonlDeadLetterStore(path).list()).map((l) => l.id)).toEqual(["a"]);
  expect(await store.purge()).toBe(1);
  expect(await store.list()).toEqual([]);
});
