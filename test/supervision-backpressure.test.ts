import { RpcError, Status, WorkerPool, isLifecycleError } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { testingPool } from "./helpers/env";
import { delay, recordEvents } from "./helpers/supervision";

const pool = new WorkerPool(testingPool({ workers: 1, maxInFlightPerWorker: 1, maxQueue: 2 }));
const client = pool.client(TestServiceDefinition);
beforeAll(() => pool.start());
afterAll(() => pool.shutdown());

test("a full queue refuses at once with RESOURCE_EXHAUSTED (lifecycle, retryable); queued calls time out by their own deadlines", async () => {
  const events = recordEvents(pool);
  let busyDone = false;
  const busy = client.sleep({ ms: 1500 }).finally(() => (busyDone = true));
  await delay(50);
  const q1 = client.echo({ text: "q1" }, { timeoutMs: 300 }).catch((e: unknown) => e as RpcError);
  const q2 = client.echo({ text: "q2" }, { timeoutMs: 600 }).catch((e: unknown) => e as RpcError);
  await delay(50);
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
  expect((await busy).completed).toBe(true);
});

test("a queued call honours its signal, and time spent queued counts toward its deadline", async () => {
  const events = recordEvents(pool);
  const busy = client.sleep({ ms: 600 });
  await delay(30);
  const ac = new AbortController();
  const aborted = client.echo({ text: "a" }, { signal: ac.signal }).catch((e: unknown) => e as RpcError);
  const waiting = client.echo({ text: "w" }, { timeoutMs: 2000 });
  await delay(50);
  ac.abort();
  expect(((await aborted) as RpcError).code()).toBe(Status.CANCELLED);
  const reply = await waiting;
  await busy;
  // About 0.55 s of the 2 s were spent in the queue: the worker sees what is left.
  expect(reply.timeRemainingSeconds).toBeLessThan(1.6);
  expect(reply.timeRemainingSeconds).toBeGreaterThan(0);
  const dequeued = events.filter((e) => e.name === "callDequeued").map((e) => e.payload);
  expect(dequeued).toHaveLength(1);
  expect(dequeued[0]).toMatchObject({ method: "/testing.v1.TestService/Echo", workerId: "w0" });
  expect(dequeued[0].waitedMs as number).toBeGreaterThan(400);
});
