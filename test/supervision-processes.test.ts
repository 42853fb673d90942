// Supervision against what servicer code does to processes: children that inherit stdout and
// stderr, forks, a worker that uses its whole drain grace, recycling under load. Real workers,
// real kill -9; waits on events and on conditions with generous deadlines, never on timings.
import { RpcError, Status, WorkerPool, type WorkerPoolEvents } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { workerDrainGraceMs } from "../src/pool/worker-process";
import { eventually, isAlive, rejection, testingPool } from "./helpers/env";
import { HOSTILE_WORKER, groupMembers, hostile } from "./helpers/hostile";
import { nextEvent } from "./helpers/supervision";
import { untilAsync } from "./helpers/wait";

jest.setTimeout(120_000);

type Exit = WorkerPoolEvents["workerExit"][0];

describe.each(["SpawnChild", "Fork"])("a servicer that starts a child process (%s)", (method) => {
  test("kill -9 of its worker: the exit is seen at once, calls go only to live workers, a replacement serves, nothing of the group is left", async () => {
    const pool = new WorkerPool(testingPool({ workers: 2, script: HOSTILE_WORKER }));
    await pool.start();
    try {
      // One child per worker (two calls admitted together go to different workers), each
      // holding the worker's stdout and stderr for 300 s.
      const children = await Promise.all([0, 1].map(() => pool.unary(hostile(method), { seconds: 300 })));
      const byWorker = new Map(children.map((c) => [c.worker_pid as number, c.pid as number]));
      expect(byWorker.size).toBe(2);
      const [w0, w1] = pool.health().workers;
      const exited = nextEvent(pool, "workerExit", (e) => e.pid === w0.pid, 60_000);
      const replaced = nextEvent(pool, "workerReady", (e) => e.workerId === "w0" && e.pid !== w0.pid, 60_000);
      process.kill(w0.pid as number, "SIGKILL");
      // Seen although the child still holds the dead worker's stdio (it would for 300 s).
      const exit = await exited;
      expect(exit.signal).toBe("SIGKILL");
      // Everything in the dead worker's process group goes with it.
      expect(await eventually(() => groupMembers(w0.pid as number).length === 0, 20_000)).toBe(true);
      expect(isAlive(byWorker.get(w0.pid as number))).toBe(false);
      // From the exit on, no call goes to the dead worker.
      const client = pool.client(TestServiceDefinition);
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.echo({ text: `after-${i}` })));
      expect(replies.every((r, i) => r.text === `after-${i}` && r.workerPid !== w0.pid)).toBe(true);
      const ready = await replaced;
      expect(pool.health().workers[0].pid).toBe(ready.pid);
      expect(isAlive(byWorker.get(w1.pid as number))).toBe(true);
    } finally {
      // shutdown() is not held by w1's child either; it leaves no process of either group.
      const workers = pool.health().workers;
      await pool.shutdown();
      for (const w of workers) expect(await eventually(() => groupMembers(w.pid as number).length === 0, 20_000)).toBe(true);
    }
  });
});

describe("a worker that uses its whole drain grace", () => {
  test("its drain grace is shorter than killTimeoutMs", () => {
    expect(workerDrainGraceMs(3000)).toBe(2000);
    expect(workerDrainGraceMs(1000)).toBe(500);
    for (const kill of [1, 10, 999, 1000, 1500, 3000, 60_000]) expect(workerDrainGraceMs(kill)).toBeLessThan(kill);
  });

  test.each([
    ["def", "HoldSync"],
    ["async def", "HoldAsync"],
  ])("a %s call still running ends UNAVAILABLE 'worker is shutting down' with the stopping trailer, and the worker exits by itself, on both transports", async (_kind, method) => {
    const outcome: Record<string, unknown> = {};
    for (const transport of ["unary", "pipelined"] as const) {
      const pool = new WorkerPool(testingPool({ workers: 1, script: HOSTILE_WORKER, transport, killTimeoutMs: 2000 }));
      await pool.start();
      const exits: Exit[] = [];
      pool.on("workerExit", (e) => exits.push(e));
      const call = pool.unary(hostile(method), { seconds: 60, ignore_cancel: true }, { timeoutMs: 60_000 });
      call.catch(() => undefined);
      // Running in the worker before the stop begins.
      expect(await untilAsync(async () => Boolean(((await pool.unary(hostile("Runs"), {})).runs as Record<string, number>)[method]), 20_000)).toBe(true);
      await pool.shutdown({ graceMs: 0 });
      const err = await rejection(call);
      outcome[transport] = {
        code: err.code(),
        details: err.details(),
        category: err.category,
        reachedWorker: err.reachedWorker,
        exits: exits.map((e) => ({ code: e.code, signal: e.signal })),
      };
    }
    // The stopping trailer is procgrpc's own (not shown in trailingMetadata()): it makes the failure a lost connection.
    expect(outcome.unary).toEqual({ code: Status.UNAVAILABLE, details: "worker is shutting down", category: "connection", reachedWorker: true, exits: [{ code: 0, signal: null }] });
    expect(outcome.pipelined).toEqual(outcome.unary);
  });
});

test("maxRequestsPerWorker under load on the default (pipelined) transport: every old worker exits by itself, none is SIGKILLed", async () => {
  // killTimeoutMs only bounds a failure: the test is that workers exit by themselves, and on a
  // loaded machine a worker's orderly stop can take longer than the default 3 s.
  const pool = new WorkerPool(testingPool({ workers: 2, transport: "pipelined", maxRequestsPerWorker: 40, recycleJitter: 0, maxInFlightPerWorker: 16, killTimeoutMs: 30_000 }));
  const exits: Exit[] = [];
  const retired = new Set<number>();
  let recycled = 0;
  pool.on("workerExit", (e) => exits.push(e));
  pool.on("workerRecycled", (e) => {
    recycled++;
    retired.add(e.oldPid as number);
  });
  await pool.start();
  const client = pool.client(TestServiceDefinition);
  const failures: string[] = [];
  let next = 0;
  const stopAt = Date.now() + 90_000; // a bound on failure only: the load runs until 12 recycles
  try {
    await Promise.all(
      Array.from({ length: 24 }, async () => {
        while (recycled < 12 && Date.now() < stopAt) {
          const i = next++;
          try {
            const reply = await client.echo({ text: `r-${i}` }, { timeoutMs: 30_000 });
            if (reply.text !== `r-${i}`) failures.push(`r-${i} got ${reply.text}`);
          } catch (err) {
            failures.push(`r-${i}: ${(err as RpcError).message}`);
          }
        }
      }),
    );
    // Every retired worker has exited (the pool waits for its calls, then stops it).
    expect(await eventually(() => pool.health().draining === 0 && [...retired].every((pid) => exits.some((e) => e.pid === pid)), 60_000)).toBe(true);
  } finally {
    await pool.shutdown();
  }
  expect(failures).toEqual([]);
  expect(recycled).toBeGreaterThanOrEqual(12);
  // Each retired worker answered what it had, ended its pipe and exited 0 by itself.
  expect(exits.filter((e) => retired.has(e.pid as number) && (e.code !== 0 || e.signal !== null))).toEqual([]);
  // And at the final shutdown (a replacement may still be starting, and die of the SIGTERM) none needed SIGKILL.
  expect(exits.filter((e) => e.signal === "SIGKILL")).toEqual([]);
});

test("a RpcError from a stopping worker is not mistaken for the servicer's", async () => {
  // The marker is what tells "worker is shutting down" from a servicer's own UNAVAILABLE.
  const pool = new WorkerPool(testingPool({ workers: 1, script: HOSTILE_WORKER }));
  await pool.start();
  try {
    const err = await rejection(pool.unary(hostile("StatusSync"), { way: "abort", code: Status.UNAVAILABLE, details: "worker is shutting down" }));
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.trailingMetadata().get("procgrpc-worker-stopping")).toEqual([]);
  } finally {
    await pool.shutdown();
  }
});
