import { RpcError, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, isAlive, testingPool } from "./helpers/env";
import { nextEvent, recordEvents, sequence } from "./helpers/supervision";

test("recycling by request count under steady concurrent load fails no call", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2, maxRequestsPerWorker: 60, recycleJitter: 0.2 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const firstPids = pool.health().workers.map((w) => w.pid);
    const failures: RpcError[] = [];
    let ok = 0;
    let stop = false;
    // Eight callers in a loop, each call holding its worker a little so that recycles overlap calls.
    const callers = Array.from({ length: 8 }, async () => {
      while (!stop) {
        await client.sleep({ ms: 5 }, { timeoutMs: 10000 }).then(
          () => (ok += 1),
          (e: RpcError) => failures.push(e),
        );
      }
    });
    expect(await eventually(() => events.filter((e) => e.name === "workerRecycled").length >= 4, 40000, 50)).toBe(true);
    stop = true;
    await Promise.all(callers);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(240);
    const recycles = events.filter((e) => e.name === "workerRecycled").map((e) => e.payload);
    expect(recycles.every((r) => r.reason === "requests")).toBe(true);
    expect(new Set(recycles.map((r) => r.workerId))).toEqual(new Set(["w0", "w1"]));
    // Each old process was stopped after draining; none is left running.
    for (const r of recycles) expect(await eventually(() => !isAlive(r.oldPid as number), 5000)).toBe(true);
    for (const pid of firstPids) expect(isAlive(pid)).toBe(false);
    // Per recycle: the new process is SERVING (workerReady) before workerRecycled, and the old one exits after.
    const w0 = sequence(events, (e) => e.payload.workerId === "w0" && ["workerReady", "workerRecycled", "workerExit"].includes(e.name));
    expect(w0.slice(0, 3)).toEqual(["workerReady", "workerRecycled", "workerExit"]);
    const oldExit = events.find((e) => e.name === "workerExit")?.payload;
    expect(oldExit).toMatchObject({ expected: true, code: 0 });
    expect(pool.health().workers.every((w) => w.restarts === 0)).toBe(true);
  } finally {
    await pool.shutdown();
  }
});

test("a handler that leaks memory gets its worker recycled by maxMemoryMb", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, maxMemoryMb: 150, healthCheckIntervalMs: 100 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const old = pool.health().workers[0];
    expect(old.rssMb).toBeGreaterThan(5);
    expect(old.rssMb).toBeLessThan(150);
    const recycled = nextEvent(pool, "workerRecycled");
    const leak = await client.leak({ mb: 200 });
    expect(leak).toMatchObject({ workerPid: old.pid, leakedMb: 200 });
    expect(await recycled).toMatchObject({ workerId: "w0", oldPid: old.pid, reason: "memory" });
    const now = pool.health().workers[0];
    expect(now.pid).not.toBe(old.pid);
    expect(now.rssMb).toBeLessThan(150);
    expect((await client.echo({ text: "fresh" })).workerPid).toBe(now.pid);
    expect(await eventually(() => !isAlive(old.pid) && events.some((e) => e.name === "workerExit"), 5000)).toBe(true);
    expect(sequence(events, (e) => ["workerReady", "workerRecycled", "workerExit"].includes(e.name))).toEqual(["workerReady", "workerRecycled", "workerExit"]);
  } finally {
    await pool.shutdown();
  }
});
