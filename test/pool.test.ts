import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { Metadata, RpcError, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { DemoServiceDefinition } from "../src/gen/demo/v1/demo";
import { ROOT, isAlive, testingPool } from "./helpers/env";

// One pool of two real Python workers serves every test in this file.
const pool = new WorkerPool(testingPool({ workers: 2 }));
const testing = pool.client(TestServiceDefinition);

beforeAll(() => pool.start());
afterAll(() => pool.shutdown());

test("a typed unary call round-trips through a real worker", async () => {
  const reply = await testing.echo({ text: "hi", payload: Buffer.from([1, 2, 3]) });
  expect(reply.text).toBe("hi");
  expect(Buffer.from(reply.payload ?? []).equals(Buffer.from([1, 2, 3]))).toBe(true);
  expect(pool.health().workers.map((w) => w.pid)).toContain(reply.workerPid);
});

test("concurrent calls spread over both workers", async () => {
  const replies = await Promise.all(Array.from({ length: 20 }, () => testing.sleep({ ms: 50 })));
  const pids = new Set(replies.map((r) => r.workerPid));
  expect(pids.size).toBe(2);
});

test("the call's deadline reaches Python as context.time_remaining()", async () => {
  const reply = await testing.echo({ text: "t" }, { timeoutMs: 5000 });
  expect(reply.timeRemainingSeconds).toBeGreaterThan(3);
  expect(reply.timeRemainingSeconds).toBeLessThanOrEqual(5);
  const later = await testing.echo({ text: "t" }, { deadline: new Date(Date.now() + 2000) });
  expect(later.timeRemainingSeconds).toBeGreaterThan(1);
  expect(later.timeRemainingSeconds).toBeLessThanOrEqual(2);
});

test("metadata reaches Python, with a generated x-request-id", async () => {
  const md = new Metadata();
  md.set("tenant", "acme");
  const reply = await testing.echo({ text: "m" }, { metadata: md });
  expect(reply.metadata.tenant).toBe("acme");
  expect(reply.metadata["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  const plain = await testing.echo({ text: "m" }, { metadata: { tenant: "globex" }, requestId: "req-42" });
  expect(plain.metadata.tenant).toBe("globex");
  expect(plain.metadata["x-request-id"]).toBe("req-42");
});

test("an async def servicer method runs as a coroutine", async () => {
  const reply = await testing.asyncEcho({ text: "async" });
  expect(reply).toMatchObject({ text: "async", ranAsync: true });
});

test("a status set by the servicer reaches TypeScript as an RpcError", async () => {
  const err = await testing.fail({ code: Status.NOT_FOUND, details: "no such thing" }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RpcError);
  expect((err as RpcError).code()).toBe(Status.NOT_FOUND);
  expect((err as RpcError).details()).toBe("no such thing");
  expect((err as RpcError).message).toBe("NOT_FOUND: no such thing (/testing.v1.TestService/Fail)");
});

test("health() reports each worker's pid, socket, state and counters", async () => {
  await testing.echo({ text: "x" });
  const health = pool.health();
  expect(health).toMatchObject({ state: "running", total: 2, ready: 2, queued: 0 });
  for (const w of health.workers) {
    expect(w.state).toBe("ready");
    expect(isAlive(w.pid)).toBe(true);
    expect(existsSync(w.socket)).toBe(true);
    expect(w.inFlight).toBe(0);
  }
  expect(health.workers.reduce((n, w) => n + w.served, 0)).toBeGreaterThan(0);
  // Sockets live in one private directory, one per worker.
  expect(new Set(health.workers.map((w) => dirname(w.socket))).size).toBe(1);
});

test("never more than maxInFlightPerWorker calls run on a worker; the rest queue", async () => {
  const small = new WorkerPool(testingPool({ workers: 1, maxInFlightPerWorker: 2 }));
  await small.start();
  try {
    const client = small.client(TestServiceDefinition);
    const calls = Array.from({ length: 6 }, () => client.sleep({ ms: 150 }));
    await new Promise((r) => setTimeout(r, 50));
    const h = small.health();
    expect(h.workers[0].inFlight).toBe(2);
    expect(h.queued).toBe(4);
    await Promise.all(calls);
    expect(small.health().workers[0].served).toBe(6);
  } finally {
    await small.shutdown();
  }
});

test("a dynamic client loads a .proto at run time and calls through the pool", async () => {
  const demoPool = new WorkerPool(testingPool({ workers: 1, script: join(ROOT, "examples", "demo_worker.py") }));
  await demoPool.start();
  try {
    const dynamic = demoPool.dynamicClient(join(ROOT, "proto", "demo", "v1", "demo.proto"), "demo.v1.DemoService");
    expect(dynamic.methods).toEqual(expect.arrayContaining(["Echo", "Divide", "WordCount"]));
    expect(await dynamic.call("Echo", { text: "dyn" })).toMatchObject({ text: "dyn" });
    const err = await dynamic.call("Divide", { dividend: 1, divisor: 0 }).catch((e: unknown) => e);
    expect((err as RpcError).code()).toBe(Status.INVALID_ARGUMENT);
    // The same pool also serves the generated client.
    const typed = demoPool.client(DemoServiceDefinition);
    expect((await typed.divide({ dividend: 9, divisor: 3 })).quotient).toBe(3);
  } finally {
    await demoPool.shutdown();
  }
});
