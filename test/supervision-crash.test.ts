import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RpcError, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { WORKERS, eventually, isAlive, testingPool } from "./helpers/env";
import { nextEvent, recordEvents, sequence } from "./helpers/supervision";

test("kill -9 mid-call: the call fails at once with UNAVAILABLE, the worker is replaced and serves (measured)", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const timings: number[] = [];
    for (let round = 0; round < 5; round++) {
      const victim = pool.health().workers[0];
      // Two long calls: least-loaded balancing puts one on each worker.
      const aborts = [new AbortController(), new AbortController()];
      const calls = aborts.map((a) => client.sleep({ ms: 20000 }, { timeoutMs: 30000, signal: a.signal }).catch((e: unknown) => e as RpcError));
      expect(await eventually(() => pool.health().workers.every((w) => w.inFlight === 1), 2000)).toBe(true);
      const ready = nextEvent(pool, "workerReady", (e) => e.workerId === victim.id);
      const killedAt = performance.now();
      process.kill(victim.pid as number, "SIGKILL");
      const failed = (await Promise.race(calls)) as RpcError;
      expect(failed).toBeInstanceOf(RpcError);
      expect(failed.code()).toBe(Status.UNAVAILABLE);
      expect(failed.category).toBe("connection");
      expect(failed.workerId).toBe(victim.id);
      // Whichever grpc-js or the process exit reports first: the connection reset, or the exit.
      expect(failed.details()).toMatch(/exited during the call \(signal SIGKILL\)|ECONNRESET|Connection dropped|socket/i);
      const back = await ready;
      timings.push(performance.now() - killedAt);
      expect(back.pid).not.toBe(victim.pid);
      expect(isAlive(victim.pid)).toBe(false);
      expect(existsSync(victim.socket)).toBe(false);
      expect(pool.health().workers[0]).toMatchObject({ state: "ready", pid: back.pid, restarts: round + 1, lastExit: "signal SIGKILL" });
      // The replacement takes calls at once.
      const replies = await Promise.all(Array.from({ length: 6 }, () => client.echo({ text: "after" })));
      expect(replies.map((r) => r.workerPid)).toContain(back.pid);
      // The other worker's call was untouched: it is still running until we cancel it.
      expect(pool.health().workers[1].inFlight).toBe(1);
      for (const a of aborts) a.abort();
      const survivor = (await Promise.all(calls)).find((e) => e !== failed) as RpcError;
      expect(survivor.code()).toBe(Status.CANCELLED);
    }
    timings.sort((a, b) => a - b);
    console.log(`kill -9 -> replacement SERVING, ms over 5 rounds (sorted): ${timings.map((t) => t.toFixed(0)).join(", ")}`);
    // Per kill: the exit, the scheduled restart, then the replacement's start and workerReady.
    const w0 = sequence(events, (e) => e.payload.workerId === "w0");
    const round = ["workerExit", "state:ready>restarting", "workerRestart", "state:starting>ready", "workerReady"];
    expect(w0).toEqual(Array.from({ length: 5 }, () => round).flat());
    const exit = events.find((e) => e.name === "workerExit")?.payload;
    expect(exit).toMatchObject({ workerId: "w0", code: null, signal: "SIGKILL", expected: false });
    expect(Array.isArray(exit?.stderrTail)).toBe(true);
  } finally {
    await pool.shutdown({ graceMs: 0 });
  }
});

describe("crash loop", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "pgcl-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("a worker that crashes on every start is marked failed (degraded), retried at the maximum backoff, and recovers", async () => {
    const marker = join(dir, "crash");
    const pool = new WorkerPool(
      testingPool({
        workers: 2,
        script: join(WORKERS, "crash_on_marker_worker.py"),
        env: { PROCGRPC_TEST_CRASH_MARKER: marker },
        restart: { initialDelayMs: 40, maxDelayMs: 400, multiplier: 2, maxRestarts: 3, windowMs: 60000 },
      }),
    );
    await pool.start();
    const events = recordEvents(pool);
    const client = pool.client(TestServiceDefinition);
    try {
      writeFileSync(marker, "");
      const victim = pool.health().workers[0];
      const degraded = nextEvent(pool, "degraded");
      process.kill(victim.pid as number, "SIGKILL");
      expect(await degraded).toMatchObject({ workerId: "w0", restartsInWindow: 4, ready: 1, total: 2 });
      expect(pool.health()).toMatchObject({ failed: 1, ready: 1 });
      expect(pool.health().workers[0].state).toBe("failed");
      // The pool keeps serving with the worker it has.
      const replies = await Promise.all(Array.from({ length: 4 }, () => client.echo({ text: "still serving" })));
      expect(new Set(replies.map((r) => r.workerPid))).toEqual(new Set([pool.health().workers[1].pid]));
      // It keeps trying at the maximum backoff: two more attempts.
      await nextEvent(pool, "workerRestart", (e) => e.workerId === "w0" && e.attempt === 6);
      const restarts = events.filter((e) => e.name === "workerRestart").map((e) => e.payload as { delayMs: number; attempt: number });
      const delays = restarts.map((r) => r.delayMs);
      // Equal jitter: each wait is between half and all of its base, and the base doubles up to the cap.
      const bases = [40, 80, 160, 400, 400, 400];
      delays.forEach((d, i) => {
        expect(d).toBeGreaterThanOrEqual(bases[i] / 2);
        expect(d).toBeLessThanOrEqual(bases[i]);
      });
      // Backoff observed: each crashed start followed its restart by at least the scheduled wait.
      const restartTimes = events.filter((e) => e.name === "workerRestart").map((e) => e.at);
      const exitTimes = events.filter((e) => e.name === "workerExit").map((e) => e.at);
      for (let i = 1; i < exitTimes.length && i < restartTimes.length; i++) {
        expect(exitTimes[i] - restartTimes[i - 1]).toBeGreaterThanOrEqual(delays[i - 1]);
      }
      const crashExit = events.filter((e) => e.name === "workerExit")[1].payload as { code: number; stderrTail: string[] };
      expect(crashExit.code).toBe(5);
      expect(crashExit.stderrTail.join("\n")).toContain("crashing on start: marker file present");
      // Fix the cause: the next attempt comes back and `recovered` fires.
      rmSync(marker);
      const recovered = await nextEvent(pool, "recovered", () => true, 5000);
      expect(recovered).toMatchObject({ workerId: "w0", ready: 2, total: 2 });
      expect(pool.health()).toMatchObject({ failed: 0, ready: 2 });
      const w0 = sequence(events, (e) => e.payload.workerId === "w0" && e.name !== "workerState");
      // Three restarts with growing backoff; the fourth exit within the window is a crash loop.
      expect(w0.slice(0, 9)).toEqual(["workerExit", "workerRestart", "workerExit", "workerRestart", "workerExit", "workerRestart", "workerExit", "degraded", "workerRestart"]);
      expect(w0.slice(-2)).toEqual(["workerReady", "recovered"]);
    } finally {
      await pool.shutdown({ graceMs: 0 });
    }
  });
});
