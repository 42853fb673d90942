/**
 * Hostile conditions in the call path (issue 16 items 1, 3, 6, 9 and issue 12 items 7, 8): abandoned
 * streams, shared request ids, limits hit on this side, peers that do not speak gRPC, listeners that
 * throw, and one request id per logical call. Real workers, default transport.
 */
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { RemotePool, Status, WorkerPool, callLogMiddleware, silentLogger, type Interceptor } from "../src";
import { ConformanceServiceDefinition } from "../src/gen/testing/v1/conformance";
import { ResilienceTestServiceDefinition } from "../src/gen/testing/v1/resilience";
import { StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { PYTHON, WORKERS, eventually, rejection, testingPool } from "./helpers/env";
import { memoryLogger } from "./helpers/memory-logger";
import { resiliencePool, stateDir } from "./helpers/resilience";
import { nextEvent, recordEvents } from "./helpers/supervision";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

describe("a server stream abandoned early releases its worker slot and is cancelled in Python", () => {
  const pool = new WorkerPool(testingPool({ workers: 1, maxInFlightPerWorker: 2, script: join(WORKERS, "streaming_worker.py") }));
  const client = pool.client(StreamingTestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());
  let tags = 0;
  const tag = (): string => `abandon-${++tags}`;
  const endless = (t: string) => client.count({ n: 1_000_000, intervalMs: 5, tag: t }, { timeoutMs: 600_000 });
  const cancelledInPython = async (t: string): Promise<boolean> => {
    for (let i = 0; i < 400; i++) {
      if ((await client.streamStats({})).cancelledTags.includes(t)) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  };

  test.each([
    ["return after the first message", async (s: AsyncIterable<unknown>) => { for await (const m of s) return m; }],
    ["break after the first message", async (s: AsyncIterable<unknown>) => { for await (const _ of s) break; }],
    ["a throw in the loop body", async (s: AsyncIterable<unknown>) => { try { for await (const _ of s) throw new Error("consumer failed"); } catch { /* the consumer's own error */ } }],
  ])("%s", async (_name, consume) => {
    const tags2 = [tag(), tag()];
    // Twice the worker's capacity: a leaked slot would make the next call wait.
    for (const t of tags2) await consume(endless(t));
    expect(await eventually(() => pool.health().workers[0].inFlight === 0, 10_000)).toBe(true);
    for (const t of tags2) expect(await cancelledInPython(t)).toBe(true);
    expect((await client.streamStats({}, { timeoutMs: 5000 })).workerPid).toBeGreaterThan(0);
  });

  test("an iterator dropped after next(): collected, the call is cancelled and the slot released", async () => {
    const t = tag();
    await (async () => {
      const iterator = endless(t)[Symbol.asyncIterator]();
      await iterator.next();
    })();
    const collected = await eventually(() => {
      gc();
      return pool.health().workers[0].inFlight === 0;
    }, 20_000, 50);
    expect(collected).toBe(true);
    expect(await cancelledInPython(t)).toBe(true);
  });
});

test("two calls sharing a request id: one cancelled politely does not get the worker killed for the other", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, cancelGraceMs: 200 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const long = client.sleep({ ms: 2500, tag: "shared-long" }, { requestId: "shared-id", timeoutMs: 20_000 });
    const polite = await rejection(client.sleep({ ms: 60_000, tag: "shared-polite" }, { requestId: "shared-id", timeoutMs: 150 }));
    expect(polite.code()).toBe(Status.DEADLINE_EXCEEDED);
    expect((await long).completed).toBe(true);
    expect(events.filter((e) => e.name === "workerHung" || e.name === "workerExit")).toEqual([]);
  } finally {
    await pool.shutdown();
  }
});

test("retries of one call share its request id (without callLogMiddleware), and so do the RpcError and every attempt", async () => {
  const seen: string[] = [];
  const spy: Interceptor = (call, next) => {
    seen.push(call.options.requestId as string);
    return next(call);
  };
  const pool = new WorkerPool(resiliencePool({ workers: 2, retry: { maxAttempts: 3, initialDelayMs: 1 }, attemptMiddleware: [spy] }));
  await pool.start();
  try {
    const dir = stateDir();
    const client = pool.client(ResilienceTestServiceDefinition);
    expect((await client.flaky({ key: "rid", stateDir: dir, failFirst: 2 })).attempt).toBe(3);
    expect(seen).toHaveLength(3);
    expect(new Set(seen).size).toBe(1);
    seen.length = 0;
    const err = await rejection(client.flaky({ key: "rid-fail", stateDir: dir, failFirst: -1 }));
    expect(err.attempts).toBe(3);
    expect(new Set(seen)).toEqual(new Set([err.requestId]));
  } finally {
    await pool.shutdown();
  }
});

test("callLogMiddleware with retries logs one request id, the one every attempt carried", async () => {
  const logger = memoryLogger();
  const pool = new WorkerPool(resiliencePool({ workers: 1, retry: { maxAttempts: 2, initialDelayMs: 1 }, middleware: [callLogMiddleware({ logger })] }));
  await pool.start();
  try {
    const err = await rejection(pool.client(ResilienceTestServiceDefinition).flaky({ key: "log", stateDir: stateDir(), failFirst: -1 }));
    const line = logger.entries.find((e) => e.msg === "call failed");
    expect(line?.fields.requestId).toBe(err.requestId);
  } finally {
    await pool.shutdown();
  }
});

describe("limits hit on this side are permanent protocol errors, never retried unless idempotent", () => {
  const worker = new WorkerPool({ workers: 1, python: PYTHON, script: join(WORKERS, "conformance_worker.py"), logger: silentLogger, startTimeoutMs: 20_000 });
  beforeAll(() => worker.start());
  afterAll(() => worker.shutdown());

  test("a response over the client's receive limit: RESOURCE_EXHAUSTED, protocol; a non-idempotent call ran once", async () => {
    const remote = new RemotePool({
      targets: [`unix:${worker.health().workers[0].socket}`],
      healthCheckIntervalMs: 0,
      retry: true,
      logger: silentLogger,
      channelOptions: { "grpc.max_receive_message_length": 1024 },
    });
    await remote.start();
    try {
      const client = remote.client(ConformanceServiceDefinition);
      const err = await rejection(client.record({ key: "too-big", padBytes: 10_000 }));
      expect(err).toMatchObject({ category: "protocol", retryable: false, attempts: 1 });
      expect(err.code()).toBe(Status.RESOURCE_EXHAUSTED);
      expect((await worker.client(ConformanceServiceDefinition).executions({ key: "too-big" })).executions).toBe(1);
    } finally {
      await remote.shutdown();
    }
  });
});

test("a RemotePool TCP target that does not speak gRPC: INTERNAL, protocol, not retryable", async () => {
  const server = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const remote = new RemotePool({ targets: [`127.0.0.1:${port}`], checkOnStart: false, healthCheckIntervalMs: 0, retry: true, logger: silentLogger });
  await remote.start();
  try {
    const err = await rejection(remote.client(TestServiceDefinition).echo({ text: "x" }, { timeoutMs: 5000 }));
    expect(err).toMatchObject({ category: "protocol", retryable: false, reachedWorker: false });
    expect(err.code()).toBe(Status.INTERNAL);
    expect(err.details()).toMatch(/^the peer does not speak gRPC over HTTP\/2/);
  } finally {
    await remote.shutdown();
    server.close();
  }
});

test("listeners that throw are logged and change nothing: start() resolves, a killed worker is restarted", async () => {
  const logger = memoryLogger();
  const pool = new WorkerPool(testingPool({ workers: 1, logger }));
  pool.on("workerState", () => {
    throw new Error("a broken workerState listener");
  });
  pool.on("workerExit", () => {
    throw new Error("a broken workerExit listener");
  });
  await pool.start();
  try {
    const pid = pool.health().workers[0].pid as number;
    const ready = nextEvent(pool, "workerReady");
    process.kill(pid, "SIGKILL");
    expect((await ready).pid).not.toBe(pid);
    expect((await pool.client(TestServiceDefinition).echo({ text: "after" })).text).toBe("after");
    const thrown = logger.entries.filter((e) => e.msg === "a pool event listener threw; the pool carries on").map((e) => e.fields.event);
    expect(thrown).toEqual(expect.arrayContaining(["workerState", "workerExit"]));
  } finally {
    await pool.shutdown();
  }
});

test("removeAllListeners() changes no supervision: a recycled worker still drains its pipeline and exits by itself", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1 }));
  await pool.start();
  try {
    const client = pool.client(TestServiceDefinition);
    await client.echo({ text: "warm the pipeline" });
    pool.removeAllListeners();
    const events = recordEvents(pool);
    await pool.recycle("w0");
    expect(events.find((e) => e.name === "workerExit")?.payload).toMatchObject({ expected: true, code: 0, signal: null });
    expect((await client.echo({ text: "new worker" })).text).toBe("new worker");
  } finally {
    await pool.shutdown();
  }
});
