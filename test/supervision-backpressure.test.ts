import { RpcError, Status, WorkerPool, isLifecycleError } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, testingPool } from "./helpers/env";
import { recordEvents } from "./helpers/supervision";

const pool = new WorkerPool(testingPool({ workers: 1, maxInFlightPerWorker: 1, maxQueue: 2 }));
const client = pool.client(TestServiceDefinition);
beforeAll(() => pool.start());
afterAll(() => pool.shutdown());

test("a full queue refuses at once with RESOURCE_EXHAUSTED (lifecycle, retryable); queued calls time out by their own deadlines", async () => {
  const events = recordEvents(pool);
  // The busy call holds the only slot far longer than the queued calls' deadlines (which stay
  // generous for a loaded machine), and is cancelled at the end.
  let busyDone = false;
  const busyCancel = new AbortController();
  const busy = client.sleep({ ms: 60_000 }, { timeoutMs: 120_000, signal: busyCancel.signal }).catch((e: unknown) => e as RpcError).finally(() => (busyDone = true));
  expect(await eventually(() => pool.health().workers[0].inFlight === 1, 20_000)).toBe(true);
  const q1 = client.echo({ text: "q1" }, { timeoutMs: 3000 }).catch((e: unknown) => e as RpcError);
  const q2 = client.echo({ text: "q2" }, { timeoutMs: 6000 }).catch((e: unknown) => e as RpcError);
  // oldestQueuedMs counts whole milliseconds: wait for the first one to pass too.
  expect(await eventually(() => pool.health().queued === 2 && pool.health().oldestQueuedMs > 0, 20_000)).toBe(true);
  const h = pool.health();
  expect(h.queued).toBe(2);
  expect(h.oldestQueuedMs).toBeGreaterThan(0);
  const refused = (await client.echo({ text: "q3" }).catch((e: unknown) => e)) as RpcError;
  expect(refused.code()).toBe(Status.RESOURCE_EXHAUSTED);
  expect(refused.details()).toBe("pool queue is full (2 calls waiting)");
  expect(isLifecycleError(refused)).toBe(true);
  expect(refused.retryable).toBe(true);
  expect(refused.reachedWorker).toBe(false);
  expect(events.filter((e) => e.name === "queueFull").map((e) => e.payload)).toEqual([{ method: "/testing.v1.TestService/Echo", maxQueue: 2 }]);
  const [e1, e2] = (await Promise.all([q1, q2])) as RpcError[];
  for (const e of [e1, e2]) {
    expect(e.code()).toBe(Status.DEADLINE_EXCEEDED);
    expect(e.category).toBe("timeout");
    expect(e.details()).toBe("deadline exceeded while waiting for a free worker");
  }
  // Each by its own deadline, not when the worker became free.
  expect(busyDone).toBe(false);
  expect(pool.health().queued).toBe(0);
  busyCancel.abort();
  expect(((await busy) as RpcError).code()).toBe(Status.CANCELLED);
});

test("a queued call honours its signal, and time spent queued counts toward its deadline", async () => {
  const events = recordEvents(pool);
  const busy = client.sleep({ ms: 600 });
  expect(await eventually(() => pool.health().workers[0].inFlight === 1, 20_000)).toBe(true);
  const ac = new AbortController();
  const aborted = client.echo({ text: "a" }, { signal: ac.signal }).catch((e: unknown) => e as RpcError);
  const waiting = client.echo({ text: "w" }, { timeoutMs: 20_000 });
  expect(await eventually(() => pool.health().queued === 2, 20_000)).toBe(true);
  ac.abort();
  expect(((await aborted) as RpcError).code()).toBe(Status.CANCELLED);
  const reply = await waiting;
  await busy;
  // At least the busy call's 0.6 s less the wait to see it running was spent in the queue: the
  // worker sees what is left (lower bounds only, which load cannot break).
  expect(reply.timeRemainingSeconds).toBeLessThan(19.6);
  expect(reply.timeRemainingSeconds).toBeGreaterThan(0);
  const dequeued = events.filter((e) => e.name === "callDequeued").map((e) => e.payload);
  expect(dequeued).toHaveLength(1);
  expect(dequeued[0]).toMatchObject({ method: "/testing.v1.TestService/Echo", workerId: "w0" });
  expect(dequeued[0].waitedMs as number).toBeGreaterThan(400);
});
