import { RpcError, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, isAlive, testingPool } from "./helpers/env";
import { directCall, nextEvent, recordEvents, sequence } from "./helpers/supervision";

const setServing = TestServiceDefinition.methods.setServing;

test("a worker reporting NOT_SERVING gets no new calls until it reports SERVING again", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2, healthCheckIntervalMs: 50 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const [w0, w1] = pool.health().workers;
    await directCall(w0.socket, TestServiceDefinition, setServing, { serving: false });
    expect(await nextEvent(pool, "workerUnhealthy")).toMatchObject({ workerId: "w0", pid: w0.pid, reason: "not-serving" });
    expect(pool.health()).toMatchObject({ ready: 1 });
    expect(pool.health().workers[0].state).toBe("unhealthy");
    const replies = await Promise.all(Array.from({ length: 10 }, () => client.sleep({ ms: 20 })));
    expect(new Set(replies.map((r) => r.workerPid))).toEqual(new Set([w1.pid]));
    await directCall(w0.socket, TestServiceDefinition, setServing, { serving: true });
    expect(await nextEvent(pool, "workerHealthy")).toMatchObject({ workerId: "w0", pid: w0.pid });
    const again = await Promise.all(Array.from({ length: 10 }, () => client.sleep({ ms: 20 })));
    expect(new Set(again.map((r) => r.workerPid))).toEqual(new Set([w0.pid, w1.pid]));
    expect(sequence(events, (e) => e.payload.workerId === "w0")).toEqual(["state:ready>unhealthy", "workerUnhealthy", "state:unhealthy>ready", "workerHealthy"]);
  } finally {
    await pool.shutdown();
  }
});

test("when every worker is NOT_SERVING, calls wait waitForReadyMs then fail UNAVAILABLE 'no healthy workers available'", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2, healthCheckIntervalMs: 50, waitForReadyMs: 300 }));
  await pool.start();
  try {
    for (const w of pool.health().workers) await directCall(w.socket, TestServiceDefinition, setServing, { serving: false });
    expect(await eventually(() => pool.health().ready === 0, 3000)).toBe(true);
    const started = performance.now();
    const err = (await pool.client(TestServiceDefinition).echo({ text: "x" }, { timeoutMs: 5000 }).catch((e: unknown) => e)) as RpcError;
    const waited = performance.now() - started;
    expect(err).toBeInstanceOf(RpcError);
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.details()).toContain("no healthy workers available");
    expect(err.category).toBe("lifecycle");
    expect(err.retryable).toBe(true);
    expect(err.reachedWorker).toBe(false);
    expect(waited).toBeGreaterThanOrEqual(290); // it did wait for a worker first
  } finally {
    await pool.shutdown();
  }
});

test("a worker that stays unhealthy is replaced after replaceUnhealthyAfterMs (new one SERVING first)", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, healthCheckIntervalMs: 50, replaceUnhealthyAfterMs: 300 }));
  await pool.start();
  const events = recordEvents(pool);
  try {
    const old = pool.health().workers[0];
    await directCall(old.socket, TestServiceDefinition, setServing, { serving: false });
    const recycled = await nextEvent(pool, "workerRecycled");
    expect(recycled).toMatchObject({ workerId: "w0", oldPid: old.pid, reason: "unhealthy" });
    expect(recycled.newPid).not.toBe(old.pid);
    expect((await pool.client(TestServiceDefinition).echo({ text: "new" })).workerPid).toBe(recycled.newPid);
    expect(await eventually(() => !isAlive(old.pid), 5000)).toBe(true);
    await eventually(() => events.some((e) => e.name === "workerExit"), 2000);
    const names = sequence(events, (e) => e.name !== "workerState");
    expect(names).toEqual(["workerUnhealthy", "workerReady", "workerRecycled", "workerExit"]);
    expect(events.find((e) => e.name === "workerExit")?.payload).toMatchObject({ pid: old.pid, expected: true });
    expect(pool.health().workers[0]).toMatchObject({ state: "ready", pid: recycled.newPid, restarts: 0 });
  } finally {
    await pool.shutdown();
  }
});

test("a worker that stops answering health checks (SIGSTOP) is unhealthy after N misses, and healthy again after SIGCONT", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2, healthCheckIntervalMs: 50, healthCheckTimeoutMs: 100, unhealthyAfterMisses: 3, replaceUnhealthyAfterMs: 60000 }));
  await pool.start();
  const client = pool.client(TestServiceDefinition);
  const [w0, w1] = pool.health().workers;
  try {
    process.kill(w0.pid as number, "SIGSTOP");
    expect(await nextEvent(pool, "workerUnhealthy")).toMatchObject({ workerId: "w0", reason: "missed-checks", misses: 3 });
    const replies = await Promise.all(Array.from({ length: 6 }, () => client.echo({ text: "x" }, { timeoutMs: 2000 })));
    expect(new Set(replies.map((r) => r.workerPid))).toEqual(new Set([w1.pid]));
    process.kill(w0.pid as number, "SIGCONT");
    expect(await nextEvent(pool, "workerHealthy")).toMatchObject({ workerId: "w0", pid: w0.pid });
    expect(await eventually(() => pool.health().ready === 2, 20_000)).toBe(true);
  } finally {
    if (isAlive(w0.pid)) process.kill(w0.pid as number, "SIGCONT");
    await pool.shutdown();
  }
});
