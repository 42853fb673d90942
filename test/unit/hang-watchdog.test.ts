/** The hang watchdog (src/pool/hang-watchdog.ts) with fake timers and a fake worker report. */
import { HangWatchdog } from "../../src/pool/hang-watchdog";
import type { RunningHandler } from "../../src/transport/worker-introspection";

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

function setup(running: () => RunningHandler[], cancelGraceMs = 200, hardTimeoutMs = 0) {
  const hangs: { callId: string; reason: string }[] = [];
  const worker = { exit: undefined };
  const watchdog = new HangWatchdog(cancelGraceMs, hardTimeoutMs, async () => running(), (call, reason) => hangs.push({ callId: call.callId, reason }));
  watchdog.start();
  return { watchdog, hangs, worker };
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

test("a cancelled call whose handler is still listed after the grace is reported, by its call id", async () => {
  const { watchdog, hangs, worker } = setup(() => [{ callId: "c1", requestId: "shared", method: "/a.B/C", seconds: 10 }]);
  const call = watchdog.begin(worker, "c1", "shared", "/a.B/C");
  watchdog.cancelled(call);
  jest.advanceTimersByTime(300);
  await flush();
  expect(hangs).toEqual([{ callId: "c1", reason: "cancel-grace" }]);
  watchdog.stop();
});

test("another call with the same request id still running is not taken for the cancelled one", async () => {
  const { watchdog, hangs, worker } = setup(() => [{ callId: "c2", requestId: "shared", method: "/a.B/C", seconds: 10 }]);
  const cancelled = watchdog.begin(worker, "c1", "shared", "/a.B/C");
  watchdog.begin(worker, "c2", "shared", "/a.B/C");
  watchdog.cancelled(cancelled);
  jest.advanceTimersByTime(1000);
  await flush();
  expect(hangs).toEqual([]);
  watchdog.stop();
});

test("a call that answered is forgotten; a call running past hardTimeoutMs is reported without asking", async () => {
  const ask = jest.fn(async (): Promise<RunningHandler[]> => []);
  const hangs: string[] = [];
  const worker = { exit: undefined };
  const watchdog = new HangWatchdog(200, 1000, ask, (call, reason) => hangs.push(`${call.callId}:${reason}`));
  watchdog.start();
  const answered = watchdog.begin(worker, "a", "r", "/a.B/C");
  watchdog.end(answered);
  watchdog.begin(worker, "b", "r", "/a.B/C");
  jest.advanceTimersByTime(1300);
  await flush();
  expect(hangs).toEqual(["b:hard-timeout"]);
  expect(ask).not.toHaveBeenCalled();
  watchdog.stop();
});
