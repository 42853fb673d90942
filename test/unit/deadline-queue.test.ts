/** One timer for many deadlines (src/transport/deadline-queue.ts), with fake timers. */
import { MAX_TIMER_MS } from "../../src/core/deadline";
import { DeadlineQueue } from "../../src/transport/deadline-queue";

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

function queue() {
  const expired: number[] = [];
  const q = new DeadlineQueue<number>((k) => expired.push(k));
  return { q, expired };
}

test("keys expire in deadline order, whatever the order they were added in; never synchronously", () => {
  const { q, expired } = queue();
  const now = Date.now();
  q.add(1, now + 30);
  q.add(2, now + 10);
  q.add(3, now + 20);
  q.add(4, now);
  expect(expired).toEqual([]);
  jest.advanceTimersByTime(0);
  expect(expired).toEqual([4]);
  jest.advanceTimersByTime(15);
  expect(expired).toEqual([4, 2]);
  jest.advanceTimersByTime(100);
  expect(expired).toEqual([4, 2, 3, 1]);
  expect(jest.getTimerCount()).toBe(0);
});

test("a removed key never expires; removing the last one drops every entry and leaves the timer to fire on nothing", () => {
  const { q, expired } = queue();
  const now = Date.now();
  q.add(1, now + 10);
  q.add(2, now + 20);
  q.remove(1);
  jest.advanceTimersByTime(15);
  expect(expired).toEqual([]);
  q.remove(2);
  expect(q.size).toBe(0);
  jest.advanceTimersByTime(100);
  expect(expired).toEqual([]);
  expect(jest.getTimerCount()).toBe(0);
});

test("calls that come and go one after another share one timer: no setTimeout per call", () => {
  const { q, expired } = queue();
  const setTimeoutSpy = jest.spyOn(global, "setTimeout");
  try {
    for (let i = 0; i < 100; i++) {
      q.add(i, Date.now() + 30_000);
      jest.advanceTimersByTime(1);
      q.remove(i);
    }
    expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    q.add(100, Date.now() + 5); // earlier than the armed time: re-armed for it
    jest.advanceTimersByTime(5);
    expect(expired).toEqual([100]);
  } finally {
    setTimeoutSpy.mockRestore();
  }
});

test("stale entries do not pile up: the heap stays about as large as the live keys", () => {
  const { q } = queue();
  const now = Date.now();
  q.add(0, now + 1_000_000); // one call that stays
  for (let i = 1; i <= 10_000; i++) {
    q.add(i, now + 60_000 + i);
    q.remove(i);
  }
  expect(q.size).toBeLessThanOrEqual(130);
});

test("a deadline further than a Node timer can wait fires at its time, not at once", () => {
  const { q, expired } = queue();
  const at = Date.now() + MAX_TIMER_MS + 5_000;
  q.add(7, at);
  jest.advanceTimersByTime(MAX_TIMER_MS);
  expect(expired).toEqual([]);
  jest.advanceTimersByTime(5_000);
  expect(expired).toEqual([7]);
});

test("a callback may add and remove keys", () => {
  const expired: number[] = [];
  const q: DeadlineQueue<number> = new DeadlineQueue<number>((k) => {
    expired.push(k);
    if (k === 1) q.add(3, Date.now() + 5);
    q.remove(2);
  });
  const now = Date.now();
  q.add(1, now + 10);
  q.add(2, now + 20);
  jest.advanceTimersByTime(10);
  jest.advanceTimersByTime(100);
  expect(expired).toEqual([1, 3]);
});
