/**
 * The timeout and cancelled rows of the error model: each of the three limits fires with its own
 * `timeoutKind`, the earliest limit wins, a non-timeout abort is CANCELLED, and the worker's
 * servicer observes every one of them (context.is_active() / add_callback, seen in Stats).
 */
import { RpcError, Status, WorkerPool, isTimeout } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { testingPool, rejection } from "./helpers/env";

// One worker, so that Stats answers for the worker that ran every Sleep; a short pool default
// so that the transport limit can be seen firing.
const REQUEST_TIMEOUT_MS = 1500;
const pool = new WorkerPool(testingPool({ workers: 1, requestTimeoutMs: REQUEST_TIMEOUT_MS }));
const client = pool.client(TestServiceDefinition);
beforeAll(() => pool.start());
afterAll(() => pool.shutdown());


/** True once the servicer has recorded that the Sleep call tagged `tag` saw its cancellation. */
async function observedInPython(tag: string): Promise<boolean> {
  let tags: string[] = [];
  const poll = async (): Promise<void> => {
    tags = (await client.stats({})).cancelledTags;
  };
  await poll();
  const until = Date.now() + 20_000;
  while (!tags.includes(tag) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 25));
    await poll();
  }
  return tags.includes(tag);
}

function expectTimeout(err: RpcError, kind: string): void {
  expect(err.code()).toBe(Status.DEADLINE_EXCEEDED);
  expect(err.category).toBe("timeout");
  expect(isTimeout(err)).toBe(true);
  expect(err.timeoutKind).toBe(kind);
  expect(err.countsTowardSlo).toBe(true);
  expect(err.method).toBe("/testing.v1.TestService/Sleep");
  expect(err.workerId).toBe("w0");
  // Sleep is not idempotent: it may have done its work.
  expect(err.retryable).toBe(false);
}

test("the caller's signal aborting with a TimeoutError: DEADLINE_EXCEEDED, kind context, seen by Python", async () => {
  const err = await rejection(client.sleep({ ms: 10000, tag: "signal-timeout" }, { signal: AbortSignal.timeout(150) }));
  expectTimeout(err, "context");
  expect(err.details()).toBe("deadline exceeded: the caller's signal timed out");
  expect(await observedInPython("signal-timeout")).toBe(true);
});

test("an absolute deadline passing: kind context, seen by Python", async () => {
  const err = await rejection(client.sleep({ ms: 10000, tag: "deadline" }, { deadline: new Date(Date.now() + 150) }));
  expectTimeout(err, "context");
  expect(await observedInPython("deadline")).toBe(true);
});

test("the call's timeoutMs passing: kind per-call, seen by Python", async () => {
  // Long enough for the handler to start on a loaded machine: a call whose deadline passed before
  // the worker got to it never runs, and then Python sees nothing.
  const err = await rejection(client.sleep({ ms: 10000, tag: "per-call" }, { timeoutMs: 1000 }));
  expectTimeout(err, "per-call");
  expect(await observedInPython("per-call")).toBe(true);
});

test("the pool's requestTimeoutMs passing (no shorter limit set): kind transport, seen by Python", async () => {
  const err = await rejection(client.sleep({ ms: 10000, tag: "transport" }));
  expectTimeout(err, "transport");
  expect(await observedInPython("transport")).toBe(true);
});

test("a call's own limit replaces the pool default; of its own limits the earliest wins and names the kind", async () => {
  // timeoutMs longer than the pool default: the call's own limit applies, so it may run longer.
  expect((await client.sleep({ ms: REQUEST_TIMEOUT_MS + 500 }, { timeoutMs: 60000 })).completed).toBe(true);
  const longer = await rejection(client.sleep({ ms: 10000 }, { timeoutMs: REQUEST_TIMEOUT_MS + 300 }));
  expect(longer.timeoutKind).toBe("per-call");
  // A deadline later than timeoutMs: timeoutMs fires.
  expect((await rejection(client.sleep({ ms: 10000 }, { timeoutMs: 100, deadline: Date.now() + 1000 }))).timeoutKind).toBe("per-call");
  // timeoutMs later than the deadline: the deadline fires.
  expect((await rejection(client.sleep({ ms: 10000 }, { timeoutMs: 1000, deadline: Date.now() + 100 }))).timeoutKind).toBe("context");
});

test("a timed-out call declared idempotent is retryable", async () => {
  const err = await rejection(client.sleep({ ms: 10000 }, { timeoutMs: 100, idempotent: true }));
  expect(err.timeoutKind).toBe("per-call");
  expect(err.retryable).toBe(true);
});

test("the caller's signal aborting for any other reason: CANCELLED (cancelled), seen by Python", async () => {
  const controller = new AbortController();
  const call = rejection(client.sleep({ ms: 10000, tag: "cancelled" }, { signal: controller.signal }));
  // Abort once the call is inside the servicer.
  const calls = (await client.stats({})).calls;
  while ((await client.stats({})).calls < calls + 2) await new Promise((r) => setTimeout(r, 20));
  controller.abort(new Error("user navigated away"));
  const err = await call;
  expect(err.code()).toBe(Status.CANCELLED);
  expect(err.category).toBe("cancelled");
  expect(err.timeoutKind).toBeUndefined();
  expect(err.details()).toBe("call cancelled by the caller: user navigated away");
  expect(err.retryable).toBe(false);
  expect(err.countsTowardSlo).toBe(false);
  expect(err.workerId).toBe("w0");
  expect(await observedInPython("cancelled")).toBe(true);
});

test("a signal already aborted: CANCELLED before any worker is involved", async () => {
  const err = await rejection(client.sleep({ ms: 10 }, { signal: AbortSignal.abort() }));
  expect(err.code()).toBe(Status.CANCELLED);
  expect(err.category).toBe("cancelled");
  expect(err.details()).toMatch(/^call cancelled by the caller/);
  // No worker was chosen for it.
  expect(err.workerId).toBeUndefined();
});

test("DEADLINE_EXCEEDED sent by the servicer before the deadline is a worker error, not a timeout", async () => {
  const err = await rejection(client.fail({ mode: 3, exception: "TimeoutError", details: "the database timed out" }));
  expect(err.code()).toBe(Status.DEADLINE_EXCEEDED);
  expect(err.category).toBe("worker");
  expect(err.timeoutKind).toBeUndefined();
  // A server-side failure: the caller sees the exception's class, the worker log has the text.
  expect(err.details()).toBe(`TimeoutError (request id ${err.requestId}; details in the worker log)`);
});
