// Unit tests of pushable(): pure logic, no workers (the integration tests are in streaming-push.test.ts).
import { pushable } from "../src";
import { closeRequests } from "../src/call/pushable";

/** Settles pending promise callbacks (no timers involved). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Tracks whether a promise has settled, and how. */
function track(p: Promise<unknown>): { settled: () => string } {
  let outcome = "pending";
  p.then(
    () => (outcome = "resolved"),
    (e: unknown) => (outcome = `rejected: ${(e as Error).message}`),
  );
  return { settled: () => outcome };
}

test("messages come out in order; end() ends the iteration after the buffered ones", async () => {
  const p = pushable<number>({ highWaterMark: 10 });
  for (let i = 0; i < 3; i++) void p.write(i);
  p.end();
  const got: number[] = [];
  for await (const n of p) got.push(n);
  expect(got).toEqual([0, 1, 2]);
  expect(p.writable).toBe(false);
});

test("highWaterMark 1 (default): one write is taken ahead; the next waits until the stream takes the first", async () => {
  const p = pushable<string>();
  const it = p[Symbol.asyncIterator]();
  const first = track(p.write("a"));
  const second = track(p.write("b"));
  const third = track(p.write("c"));
  await flush();
  expect([first.settled(), second.settled(), third.settled()]).toEqual(["resolved", "pending", "pending"]);
  expect(p.buffered).toBe(3);
  expect(await it.next()).toEqual({ done: false, value: "a" });
  await flush();
  // "b" now heads the buffer: its write resolves; "c" still waits.
  expect([second.settled(), third.settled()]).toEqual(["resolved", "pending"]);
  expect(await it.next()).toEqual({ done: false, value: "b" });
  await flush();
  expect(third.settled()).toBe("resolved");
});

test("highWaterMark 0: a write resolves only when the stream took its message", async () => {
  const p = pushable<string>({ highWaterMark: 0 });
  const it = p[Symbol.asyncIterator]();
  const w = track(p.write("a"));
  await flush();
  expect(w.settled()).toBe("pending");
  await it.next();
  await flush();
  expect(w.settled()).toBe("resolved");
  // A reader already waiting takes the message at once.
  const next = it.next();
  const w2 = track(p.write("b"));
  expect(await next).toEqual({ done: false, value: "b" });
  await flush();
  expect(w2.settled()).toBe("resolved");
});

test("write after end() or cancel() is a clear error; end() and cancel() are idempotent", async () => {
  const ended = pushable<number>();
  ended.end();
  ended.end();
  await expect(ended.write(1)).rejects.toThrow("pushable: write() after end()");
  const cancelled = pushable<number>();
  cancelled.cancel();
  cancelled.cancel(new Error("again"));
  await expect(cancelled.write(1)).rejects.toThrow("pushable: write() after cancel()");
});

test("cancel(reason) makes the stream throw the reason (so the call fails) and rejects writes not taken", async () => {
  const p = pushable<number>({ highWaterMark: 0 });
  const it = p[Symbol.asyncIterator]();
  const waiting = track(p.write(1));
  const reason = new Error("user gave up");
  p.cancel(reason);
  await flush();
  expect(waiting.settled()).toBe("rejected: pushable: cancelled before the stream took this message");
  await expect(it.next()).rejects.toBe(reason);
  expect(p.writable).toBe(false);
});

test("cancel() while the stream waits for a message rejects its read; without a reason it says the writer cancelled", async () => {
  const p = pushable<number>();
  const it = p[Symbol.asyncIterator]();
  const read = it.next();
  p.cancel();
  await expect(read).rejects.toThrow("the writer cancelled the call");
});

test("when the stream stops reading (return()), waiting and later writes reject: the messages were not sent", async () => {
  const p = pushable<number>({ highWaterMark: 0 });
  const it = p[Symbol.asyncIterator]();
  const waiting = track(p.write(1));
  await it.return?.();
  await flush();
  expect(waiting.settled()).toBe("rejected: pushable: the call stopped taking requests; the message was not sent");
  await expect(p.write(2)).rejects.toThrow("the call stopped taking requests");
  expect(await it.next()).toEqual({ done: true, value: undefined });
});

test("closeRequests(reason) from the pool: writes reject with the call's own error; other iterables are left alone", async () => {
  const p = pushable<number>({ highWaterMark: 0 });
  const waiting = p.write(1);
  const callError = new Error("UNAVAILABLE: no worker");
  closeRequests(p, callError);
  await expect(waiting).rejects.toBe(callError);
  await expect(p.write(2)).rejects.toBe(callError);
  expect(() => closeRequests([1, 2], callError)).not.toThrow();
  expect(() => closeRequests(undefined, callError)).not.toThrow();
});

test("it can be read once; a bad highWaterMark is a RangeError", () => {
  const p = pushable<number>();
  p[Symbol.asyncIterator]();
  expect(() => p[Symbol.asyncIterator]()).toThrow("it can be read once");
  expect(() => pushable({ highWaterMark: -1 })).toThrow(RangeError);
  expect(() => pushable({ highWaterMark: 1.5 })).toThrow(RangeError);
});
