import { RpcError, Status, WorkerPool, isConnectionError, isTimeout, type Metadata } from "../src";
import { Client, credentials } from "@grpc/grpc-js";
import { StreamStatsRequest, StreamStatsResponse, StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { WORKERS, testingPool } from "./helpers/env";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const pool = new WorkerPool(testingPool({ workers: 2, script: join(WORKERS, "streaming_worker.py") }));
const streams = pool.client(StreamingTestServiceDefinition);
const unary = pool.client(TestServiceDefinition);

beforeAll(() => pool.start());
afterAll(() => pool.shutdown());

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function* chunks(n: number, size: number, delayMs = 0): AsyncGenerator<{ data: Buffer; delayMs: number }> {
  for (let i = 0; i < n; i++) yield { data: Buffer.alloc(size, i % 256), delayMs };
}

/** What every worker of the pool has observed of streams (asked on each worker's own socket). */
async function streamStats(): Promise<{ cancelled: string[]; finished: string[]; produced: Record<string, number> }> {
  const all = await Promise.all(
    pool.health().workers.map(async (w) => {
      const client = new Client(`unix:${w.socket}`, credentials.createInsecure());
      try {
        return await new Promise<StreamStatsResponse>((resolve, reject) =>
          client.makeUnaryRequest(
            "/testing.v1.StreamingTestService/StreamStats",
            (r: StreamStatsRequest) => Buffer.from(StreamStatsRequest.encode(r).finish()),
            (b: Buffer) => StreamStatsResponse.decode(b),
            {},
            (err, res) => (err || !res ? reject(err) : resolve(res)),
          ),
        );
      } finally {
        client.close();
      }
    }),
  );
  return {
    cancelled: all.flatMap((s) => s.cancelledTags),
    finished: all.flatMap((s) => s.finishedTags),
    produced: Object.assign({}, ...all.map((s) => s.produced)) as Record<string, number>,
  };
}

describe("each streaming kind round-trips, sync and async servicers", () => {
  test("server streaming from a sync generator, with trailers", async () => {
    let trailers: Metadata | undefined;
    const got = await collect(streams.count({ n: 5 }, { onTrailer: (md) => (trailers = md) }));
    expect(got.map((m) => m.index)).toEqual([0, 1, 2, 3, 4]);
    expect(trailers?.get("total")).toEqual(["5"]);
  });

  test("server streaming from an async generator", async () => {
    const got = await collect(streams.asyncCount({ n: 4 }));
    expect(got.map((m) => m.index)).toEqual([0, 1, 2, 3]);
  });

  test("client streaming into a sync request iterator, from an array and an async generator", async () => {
    const fromArray = await streams.upload([{ data: Buffer.from("ab") }, { data: Buffer.from("cde") }]);
    expect(fromArray).toMatchObject({ bytes: 5, chunks: 2 });
    const fromGenerator = await streams.upload(chunks(10, 1000));
    expect(fromGenerator).toMatchObject({ bytes: 10_000, chunks: 10 });
  });

  test("client streaming into an async request iterator", async () => {
    const summary = await streams.asyncUpload(chunks(7, 100));
    expect(summary).toMatchObject({ bytes: 700, chunks: 7 });
  });

  test("bidirectional, sync and async", async () => {
    const sync = await collect(streams.chat([{ text: "a" }, { text: "b" }, { text: "c" }]));
    expect(sync.map((m) => m.text)).toEqual(["A", "B", "C"]);
    const asyncReplies = await collect(streams.asyncChat((async function* () {
      yield { text: "abc" };
      yield { text: "xyz" };
    })()));
    expect(asyncReplies.map((m) => m.text)).toEqual(["cba", "zyx"]);
  });

  test("bidirectional is interactive: each answer arrives before the next request is produced", async () => {
    const answers: string[] = [];
    let waiting: ((v: void) => void) | undefined;
    async function* conversation(): AsyncGenerator<{ text: string }> {
      for (const word of ["one", "two", "three"]) {
        yield { text: word };
        await new Promise<void>((resolve) => (waiting = resolve));
      }
    }
    for await (const reply of streams.chat(conversation())) {
      answers.push(reply.text);
      waiting?.();
    }
    expect(answers).toEqual(["ONE", "TWO", "THREE"]);
  });
});

test("an error after N messages delivers the N messages, then an RpcError with the worker's trailers", async () => {
  const got: number[] = [];
  let error: unknown;
  try {
    for await (const m of streams.count({ n: 10, failAfter: 3, failCode: Status.RESOURCE_EXHAUSTED })) got.push(m.index);
  } catch (err) {
    error = err;
  }
  expect(got).toEqual([0, 1, 2]);
  expect(error).toBeInstanceOf(RpcError);
  const e = error as RpcError;
  expect(e.code()).toBe(Status.RESOURCE_EXHAUSTED);
  expect(e.details()).toBe("failed after 3 messages");
  expect(e.category).toBe("worker");
  expect(e.trailingMetadata().get("failed-at")).toEqual(["3"]);
  expect(e.method).toBe("/testing.v1.StreamingTestService/Count");
});

describe("cancellation reaches Python", () => {
  test("breaking out of for await cancels the call; the generator's finally runs", async () => {
    const got: number[] = [];
    for await (const m of streams.count({ n: 1000, intervalMs: 5, tag: "break-1" })) {
      got.push(m.index);
      if (got.length === 3) break;
    }
    expect(got).toEqual([0, 1, 2]);
    await expectEventuallyTagged("break-1");
  });

  test("aborting the signal ends the iterator with CANCELLED and Python sees it", async () => {
    const controller = new AbortController();
    const got: number[] = [];
    const err = await (async () => {
      for await (const m of streams.count({ n: 1000, intervalMs: 5, tag: "signal-1" }, { signal: controller.signal })) {
        got.push(m.index);
        if (got.length === 2) controller.abort();
      }
    })().catch((e: unknown) => e);
    expect((err as RpcError).code()).toBe(Status.CANCELLED);
    expect((err as RpcError).category).toBe("cancelled");
    await expectEventuallyTagged("signal-1");
  });

  test("the deadline applies to the whole stream", async () => {
    const got: number[] = [];
    const err = await (async () => {
      for await (const m of streams.count({ n: 1000, intervalMs: 20, tag: "deadline-1" }, { timeoutMs: 300 })) got.push(m.index);
    })().catch((e: unknown) => e);
    expect(isTimeout(err)).toBe(true);
    expect((err as RpcError).timeoutKind).toBe("per-call");
    expect(got.length).toBeGreaterThan(0);
    await expectEventuallyTagged("deadline-1");
  });
});

async function expectEventuallyTagged(tag: string): Promise<void> {
  let stats = await streamStats();
  const until = Date.now() + 20_000;
  while (!(stats.cancelled.includes(tag) && stats.finished.includes(tag)) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    stats = await streamStats();
  }
  expect(stats.cancelled).toContain(tag);
  expect(stats.finished).toContain(tag);
}

test("a worker crash mid-stream ends the iterator with UNAVAILABLE after the messages received", async () => {
  const crashPool = new WorkerPool(testingPool({ workers: 1, script: join(WORKERS, "streaming_worker.py") }));
  await crashPool.start();
  try {
    const client = crashPool.client(StreamingTestServiceDefinition);
    const got: number[] = [];
    const err = await (async () => {
      for await (const m of client.count({ n: 1000, intervalMs: 5 })) {
        got.push(m.index);
        if (got.length === 3) process.kill(m.workerPid, "SIGKILL");
      }
    })().catch((e: unknown) => e);
    expect(got.length).toBeGreaterThanOrEqual(3);
    expect(isConnectionError(err)).toBe(true);
    expect((err as RpcError).code()).toBe(Status.UNAVAILABLE);
  } finally {
    await crashPool.shutdown();
  }
});

test("streams count toward maxInFlightPerWorker and balancing, and release their slot when done", async () => {
  const iterators = [streams.count({ n: 3, intervalMs: 100 }), streams.count({ n: 3, intervalMs: 100 })].map((s) => s[Symbol.asyncIterator]());
  await Promise.all(iterators.map((it) => it.next()));
  const during = pool.health().workers.map((w) => w.inFlight);
  expect(during.reduce((a, b) => a + b, 0)).toBe(2);
  expect(during).toEqual([1, 1]); // least-loaded: one stream per worker
  for (const it of iterators) while (!(await it.next()).done);
  expect(pool.health().workers.map((w) => w.inFlight)).toEqual([0, 0]);
});

test("streams and unary calls mixed under load on a pool of 2", async () => {
  const streamJobs = Array.from({ length: 8 }, (_, i) => collect(streams.count({ n: 50, payloadSize: 1024, tag: `mix-${i}` })));
  const uploads = Array.from({ length: 4 }, () => streams.upload(chunks(50, 4096)));
  const unaryJobs = Array.from({ length: 200 }, (_, i) => unary.echo({ text: `u${i}` }));
  const [streamed, uploaded, echoed] = await Promise.all([Promise.all(streamJobs), Promise.all(uploads), Promise.all(unaryJobs)]);
  expect(streamed.every((s) => s.length === 50)).toBe(true);
  expect(uploaded.every((u) => u.bytes === 50 * 4096)).toBe(true);
  expect(echoed.map((e) => e.text)).toEqual(unaryJobs.map((_, i) => `u${i}`));
  expect(pool.health().workers.map((w) => w.inFlight)).toEqual([0, 0]);
});

describe("retries of server streams, under the pool's retry policy", () => {
  const retrying = new WorkerPool(testingPool({ workers: 2, script: join(WORKERS, "streaming_worker.py"), retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 5 } }));
  const client = retrying.client(StreamingTestServiceDefinition);
  const dir = mkdtempSync(join(tmpdir(), "pgs-"));
  beforeAll(() => retrying.start());
  afterAll(async () => {
    await retrying.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a stream that fails before its first message is retried, on the other worker", async () => {
    const retried: string[] = [];
    retrying.resilience.on("retry", (e) => retried.push(e.error.workerId ?? "?"));
    const got = await collect(client.count({ n: 3, tag: "retry-open", failFirst: 1, stateDir: dir }));
    expect(got.map((m) => m.index)).toEqual([0, 1, 2]);
    expect(retried).toHaveLength(1);
    const answeredBy = retrying.health().workers.find((w) => w.pid === got[0].workerPid)?.id;
    expect(answeredBy).not.toBe(retried[0]);
  });

  test("a stream that fails after delivering messages is never repeated", async () => {
    const before = retrying.resilience.counters().retries;
    const got: number[] = [];
    const err = await (async () => {
      for await (const m of client.count({ n: 10, failAfter: 2, failCode: Status.UNAVAILABLE })) got.push(m.index);
    })().catch((e: unknown) => e);
    expect(got).toEqual([0, 1]);
    expect((err as RpcError).code()).toBe(Status.UNAVAILABLE);
    expect(retrying.resilience.counters().retries).toBe(before);
  });
});
