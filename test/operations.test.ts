/**
 * The operational API: `pool.recycle(id)` and `pool.drain(id)` under steady load, with zero
 * failed calls (asserted on outcomes and events, never on timings).
 */
import { RpcError, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { isAlive, testingPool } from "./helpers/env";
import { recordEvents, sequence } from "./helpers/supervision";

/** Runs `lanes` loops of short calls until `stop()`; returns every failure. */
function steadyLoad(pool: WorkerPool, lanes: number): { stop: () => Promise<RpcError[]>; served: () => number } {
  const client = pool.client(TestServiceDefinition);
  const failures: RpcError[] = [];
  let served = 0;
  let running = true;
  const loops = Array.from({ length: lanes }, async () => {
    while (running) {
      await client.sleep({ ms: 5 }, { timeoutMs: 20000 }).then(
        () => void (served += 1),
        (e: RpcError) => void failures.push(e),
      );
    }
  });
  return {
    served: () => served,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return failures;
    },
  };
}

test("recycle(id) under load: the new process serves before the old one drains; no call fails", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2 }));
  await pool.start();
  const events = recordEvents(pool);
  const load = steadyLoad(pool, 8);
  try {
    const oldPid = pool.health().workers.find((w) => w.id === "w0")?.pid;
    await pool.recycle("w0");
    expect(isAlive(oldPid)).toBe(false);
    const w0 = sequence(events, (e) => e.payload.workerId === "w0" && ["workerReady", "workerRecycled", "workerExit"].includes(e.name));
    expect(w0).toEqual(["workerReady", "workerRecycled", "workerExit"]);
    expect(events.find((e) => e.name === "workerRecycled")?.payload).toMatchObject({ reason: "manual", oldPid });
    expect(events.find((e) => e.name === "workerExit")?.payload).toMatchObject({ expected: true, pid: oldPid });
    const before = load.served();
    while (load.served() < before + 20) await new Promise((r) => setImmediate(r));
  } finally {
    expect(await load.stop()).toEqual([]);
    await pool.shutdown();
  }
});

test("drain(id) under load: the worker leaves the pool after its calls finish; no call fails", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2 }));
  await pool.start();
  const events = recordEvents(pool);
  const load = steadyLoad(pool, 8);
  try {
    const pid = pool.health().workers.find((w) => w.id === "w1")?.pid;
    await pool.drain("w1");
    expect(isAlive(pid)).toBe(false);
    expect(pool.health()).toMatchObject({ total: 1, ready: 1 });
    expect(pool.health().workers.map((w) => w.id)).toEqual(["w0"]);
    expect(events.filter((e) => e.name === "workerDrained").map((e) => e.payload)).toEqual([{ workerId: "w1", pid, remaining: 1 }]);
    expect(events.find((e) => e.name === "workerExit")?.payload).toMatchObject({ workerId: "w1", expected: true });
    expect(events.some((e) => e.name === "workerRestart")).toBe(false);
    const before = load.served();
    while (load.served() < before + 20) await new Promise((r) => setImmediate(r));
  } finally {
    expect(await load.stop()).toEqual([]);
    await pool.shutdown();
  }
});

test("recycle and drain refuse an unknown worker with a RangeError naming the workers there are", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1 }));
  await pool.start();
  try {
    await expect(pool.recycle("w9")).rejects.toThrow(/no worker "w9"; the pool has w0/);
    await expect(pool.drain("w9")).rejects.toBeInstanceOf(RangeError);
  } finally {
    await pool.shutdown();
  }
});
