import { RpcError, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, isAlive, testingPool } from "./helpers/env";
import { handlerStarted, handlersIdle, nextEvent, recordEvents, sequence } from "./helpers/supervision";

test("a handler that ignores cancellation is killed after cancelGraceMs and replaced; calls on the other worker are unaffected", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2, cancelGraceMs: 300 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  let stop = false;
  try {
    const before = pool.health().workers;
    const runaway = (await client.sleep({ ms: 60000, ignoreCancel: true, tag: "runaway" }, { timeoutMs: 200, requestId: "runaway-1" }).catch((e: unknown) => e)) as RpcError;
    expect(runaway.code()).toBe(Status.DEADLINE_EXCEEDED);
    const hungId = runaway.workerId as string;
    const hungPid = before.find((w) => w.id === hungId)?.pid;
    const otherPid = before.find((w) => w.id !== hungId)?.pid;
    // Steady traffic while the watchdog decides: only calls on the hung worker may fail.
    const outcomes: { pid?: number; err?: RpcError }[] = [];
    const traffic = (async () => {
      while (!stop) {
        await client.sleep({ ms: 30 }).then(
          (r) => outcomes.push({ pid: r.workerPid }),
          (e: RpcError) => outcomes.push({ err: e }),
        );
      }
    })();
    const hung = await nextEvent(pool, "workerHung");
    expect(hung).toMatchObject({ workerId: hungId, pid: hungPid, reason: "cancel-grace", method: "/testing.v1.TestService/Sleep", requestId: "runaway-1" });
    expect(hung.runningMs).toBeGreaterThanOrEqual(500); // deadline + grace
    const ready = await nextEvent(pool, "workerReady", (e) => e.workerId === hungId);
    expect(isAlive(hungPid)).toBe(false);
    expect(await eventually(() => outcomes.some((o) => o.pid === ready.pid), 20_000)).toBe(true);
    stop = true;
    await traffic;
    for (const o of outcomes) {
      if (o.err) {
        expect(o.err.code()).toBe(Status.UNAVAILABLE);
        expect(o.err.workerId).toBe(hungId);
      }
    }
    expect(outcomes.filter((o) => o.pid === otherPid).length).toBeGreaterThan(0);
    expect(outcomes.some((o) => o.pid === ready.pid)).toBe(true);
    const slot = pool.health().workers.find((w) => w.id === hungId);
    expect(slot).toMatchObject({ state: "ready", pid: ready.pid, restarts: 1 });
    expect(slot?.lastExit).toBe("signal SIGKILL (killed by the pool: cancel-grace on /testing.v1.TestService/Sleep)");
    const names = sequence(events, (e) => e.payload.workerId === hungId && (e.name === "workerHung" || e.name === "workerExit" || e.name === "workerRestart" || e.name === "workerReady"));
    expect(names).toEqual(["workerHung", "workerExit", "workerRestart", "workerReady"]);
    expect(events.find((e) => e.name === "workerRestart")?.payload).toMatchObject({ delayMs: 0, reason: "hang" });
  } finally {
    stop = true; // a failed assertion must not leave the traffic loop spinning on a shut pool
    await pool.shutdown({ graceMs: 0 });
  }
});

test("a handler that honours cancellation does not get its worker killed", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, cancelGraceMs: 100 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const pid = pool.health().workers[0].pid;
    const err = (await client.sleep({ ms: 60000, tag: "polite" }, { timeoutMs: 150 }).catch((e: unknown) => e)) as RpcError;
    expect(err.code()).toBe(Status.DEADLINE_EXCEEDED);
    const ac = new AbortController();
    const cancelled = client.sleep({ ms: 60000, tag: "aborted" }, { signal: ac.signal, requestId: "aborted-1" }).catch((e: unknown) => e as RpcError);
    await handlerStarted(pool.health().workers[0].socket, "aborted-1");
    ac.abort();
    expect(((await cancelled) as RpcError).code()).toBe(Status.CANCELLED);
    // Both handlers have seen their cancellation and ended in Python: from then on nothing is left
    // running that the watchdog could take for a hang, so the absence of events below is final.
    await handlersIdle(pool.health().workers[0].socket);
    const stats = await client.stats({});
    expect(events.filter((e) => e.name === "workerHung" || e.name === "workerExit")).toEqual([]);
    expect(stats.workerPid).toBe(pid);
    expect(stats.cancelledTags).toEqual(expect.arrayContaining(["polite", "aborted"]));
  } finally {
    await pool.shutdown();
  }
});

test("a call running past hardTimeoutMs gets its worker killed and fails with UNAVAILABLE, whatever its deadline", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, hardTimeoutMs: 400 }));
  await pool.start();
  const client = pool.client(TestServiceDefinition);
  try {
    const pid = pool.health().workers[0].pid;
    const hung = nextEvent(pool, "workerHung");
    const err = (await client.sleep({ ms: 20000 }, { timeoutMs: 30000 }).catch((e: unknown) => e)) as RpcError;
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.category).toBe("connection");
    expect(await hung).toMatchObject({ reason: "hard-timeout", pid });
    await nextEvent(pool, "workerReady");
    expect(await eventually(() => !isAlive(pid), 2000)).toBe(true);
    expect((await client.echo({ text: "back" })).workerPid).not.toBe(pid);
  } finally {
    await pool.shutdown();
  }
});
