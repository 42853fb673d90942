/**
 * The shared-memory lane in the real call path (docs/shared-memory-lane.md): large unary
 * messages of the pipelined transport travel as files in the pool's private directory, with the
 * same results as inline; broken files are `protocol` errors; a full directory falls back to the
 * socket; no file outlives a call, a killed worker, a killed Node process or the pool.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, watch, type FSWatcher } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkerPool, pushable, rawUnaryMethod, type Logger } from "../src";
import { MAX_SPARE_FILES, isSpareFileName } from "../src/transport/shared-memory-lane";
import { StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { EchoRequest, EchoResponse, TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { ROOT, WORKERS, eventually, isAlive, rejection, testingPool } from "./helpers/env";
import { startHolder } from "./helpers/holder";

const SHM = existsSync("/dev/shm") ? "/dev/shm" : undefined;
const base = mkdtempSync(join(SHM ?? ROOT, "pglane-test-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** The lane directories under `base` (of every pool), or of one Node process. */
function laneDirs(pid?: number): string[] {
  return readdirSync(base)
    .filter((n) => n.startsWith(pid === undefined ? "procgrpc-lane-" : `procgrpc-lane-${pid}-`))
    .map((n) => join(base, n));
}

function laneFiles(): string[] {
  return laneDirs().flatMap((d) => (existsSync(d) ? readdirSync(d) : []));
}

/** The lane files that are messages: not the spares each side keeps to write its next messages into. */
function messageFiles(): string[] {
  return laneFiles().filter((n) => !isSpareFileName(n));
}

/**
 * Records the names of files created in the pool's lane directory while `run` runs; with `until`,
 * also waits (bounded) for the names it expects, since inotify events may arrive after the call.
 */
async function filesCreatedDuring<T>(run: () => Promise<T>, until?: (created: string[], value: T) => boolean): Promise<{ value: T; created: string[] }> {
  const [dir] = laneDirs(process.pid);
  const created = new Set<string>();
  const watcher: FSWatcher = watch(dir, (_event, name) => name && created.add(name));
  try {
    const value = await run();
    if (until) await eventually(() => until([...created], value), 10_000);
    return { value, created: [...created] };
  } finally {
    watcher.close();
  }
}

const describeShm = SHM ? describe : describe.skip;

describeShm("unary calls through the lane", () => {
  const pool = new WorkerPool(testingPool({ workers: 1, sharedMemoryLane: { directory: base, thresholdBytes: 256 * 1024 } }));
  const client = pool.client(TestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("a large request and response travel as lane files in a private 0700 directory; the exact bytes come back and no file is left", async () => {
    const [dir] = laneDirs(process.pid);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const payload = randomBytes(3 * 1024 * 1024);
    const bothSides = (names: string[], answer: { workerPid: number }): boolean => names.some((n) => n.startsWith("n-")) && names.some((n) => n.startsWith(`p${answer.workerPid}-`));
    const { value, created } = await filesCreatedDuring(() => client.echo({ payload, text: "big" }), bothSides);
    expect(Buffer.compare(Buffer.from(value.payload), payload)).toBe(0);
    expect(value.text).toBe("big");
    // One request file written by Node, one response file written by the worker process.
    expect(created.some((n) => n.startsWith("n-"))).toBe(true);
    expect(created.some((n) => n.startsWith(`p${value.workerPid}-`))).toBe(true);
    expect(messageFiles()).toEqual([]);
    // What is left are spares, at most MAX_SPARE_FILES a side, each side's own (named by its prefix).
    const spares = laneFiles().filter(isSpareFileName);
    expect(spares.every((n) => n.startsWith("n-spare-") || n.startsWith(`p${value.workerPid}-spare-`))).toBe(true);
    expect(spares.length).toBeLessThanOrEqual(2 * MAX_SPARE_FILES);
  });

  test("the next large calls are written over the spares (no new file per message), and the spares are dropped once no large message came for a while", async () => {
    const payload = randomBytes(1024 * 1024);
    await client.echo({ payload });
    const before = laneFiles().filter(isSpareFileName);
    expect(before.length).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) {
      const answer = await client.echo({ payload: Buffer.from(payload.map((b) => b ^ i)) });
      expect(Buffer.compare(Buffer.from(answer.payload), Buffer.from(payload.map((b) => b ^ i)))).toBe(0);
    }
    expect(laneFiles().filter(isSpareFileName).length).toBeLessThanOrEqual(2 * MAX_SPARE_FILES);
    expect(await eventually(() => laneFiles().length === 0, 20_000)).toBe(true); // idle: both sides drop theirs
  });

  test("small messages stay inline; many large calls at once each get their own bytes", async () => {
    const { created } = await filesCreatedDuring(() => client.echo({ text: "small" }));
    expect(created).toEqual([]);
    const payloads = Array.from({ length: 8 }, () => randomBytes(1024 * 1024 + Math.floor(Math.random() * 1000)));
    const answers = await Promise.all(payloads.map((payload) => client.echo({ payload })));
    answers.forEach((a, i) => expect(Buffer.compare(Buffer.from(a.payload), payloads[i])).toBe(0));
    expect(messageFiles()).toEqual([]);
  });

  test("responses read into the reused buffer: a response that is a view of its bytes (rawUnaryMethod) keeps them after later calls", async () => {
    const echo = rawUnaryMethod("/testing.v1.TestService/Echo");
    const request = (fill: number): Buffer => Buffer.from(EchoRequest.encode({ text: "", payload: Buffer.alloc(512 * 1024, fill) }).finish());
    const first = await pool.unary(echo, request(1));
    const firstCopy = Buffer.from(first);
    const typed = await Promise.all([2, 3, 4].map((fill) => client.echo({ payload: Buffer.alloc(512 * 1024, fill) })));
    const later = await pool.unary(echo, request(5));
    expect(Buffer.compare(first, firstCopy)).toBe(0);
    expect(typed.map((r) => [r.payload.length, r.payload[0], r.payload[r.payload.length - 1]])).toEqual([2, 3, 4].map((f) => [512 * 1024, f, f]));
    expect(EchoResponse.decode(later).payload[0]).toBe(5);
    expect(EchoResponse.decode(first).payload.every((b) => b === 1)).toBe(true);
  });

  test("a large request goes to its lane file as the call is made, from the caller's own memory: changing the payload afterwards does not change what the worker gets", async () => {
    const payload = randomBytes(2 * 1024 * 1024);
    const sent = Buffer.from(payload);
    const answering = client.echo({ payload });
    payload.fill(0); // the caller reuses its buffer before the call has run
    expect(Buffer.compare(Buffer.from((await answering).payload), sent)).toBe(0);
    expect(messageFiles()).toEqual([]);
  });

  test("a call cancelled or timed out before the worker read its request leaves no file", async () => {
    const ac = new AbortController();
    const cancelled = client.echo({ payload: randomBytes(2 * 1024 * 1024) }, { signal: ac.signal });
    ac.abort();
    await rejection(cancelled);
    const late = await rejection(client.echo({ payload: randomBytes(4 * 1024 * 1024) }, { timeoutMs: 1 }));
    expect(late.code()).toBeDefined();
    await client.echo({ text: "after" });
    expect(await eventually(() => laneFiles().length === 0, 10_000)).toBe(true);
  });

  test("shutdown removes the lane directory", async () => {
    const other = new WorkerPool(testingPool({ workers: 1, sharedMemoryLane: { directory: base } }));
    try {
      await other.start();
      const before = laneDirs(process.pid).length;
      expect(before).toBe(2);
      await other.client(TestServiceDefinition).echo({ payload: randomBytes(1024 * 1024) });
      await other.shutdown();
      expect(laneDirs(process.pid).length).toBe(1);
    } finally {
      await other.shutdown(); // a failed call must not leave the pool (and jest's worker) alive
    }
  });
});

describeShm("a large request that is never sent leaves no file", () => {
  test("refused at admission (queue full) or out of time while queued, its lane file (written as it was serialized) is removed", async () => {
    const pool = new WorkerPool(testingPool({ workers: 1, maxInFlightPerWorker: 1, maxQueue: 1, sharedMemoryLane: { directory: base, thresholdBytes: 256 * 1024 } }));
    const before = new Set(laneDirs(process.pid));
    await pool.start();
    const [dir] = laneDirs(process.pid).filter((d) => !before.has(d));
    const created = new Set<string>();
    // Files are seen as they are created: no check has to beat the queued call's deadline.
    const watcher: FSWatcher = watch(dir, (_event, name) => name && created.add(name));
    const hold = new AbortController();
    try {
      const client = pool.client(TestServiceDefinition);
      // The only slot, held until the end (a Sleep returns when cancelled): far past the queued call's deadline.
      const holding = client.sleep({ ms: 60_000 }, { signal: hold.signal, timeoutMs: 120_000 });
      await eventually(() => pool.health().workers[0].inFlight === 1, 10_000);
      const queued = client.echo({ payload: randomBytes(1024 * 1024) }, { timeoutMs: 300 }); // waits, then runs out of time
      const refused = await rejection(client.echo({ payload: randomBytes(1024 * 1024) })); // the queue is full
      expect(refused.code()).toBe(8); // RESOURCE_EXHAUSTED
      expect((await rejection(queued)).code()).toBe(4); // DEADLINE_EXCEEDED, never sent
      expect(await eventually(() => [...created].filter((n) => n.startsWith("n-") && !isSpareFileName(n)).length >= 1, 10_000)).toBe(true); // requests went to the lane as serialized
      hold.abort();
      await rejection(holding);
      expect(messageFiles()).toEqual([]);
    } finally {
      watcher.close();
      await pool.shutdown();
    }
  });
});

describeShm("stream calls through the lane", () => {
  const options = { workers: 1, script: join(WORKERS, "streaming_worker.py") };
  const pool = new WorkerPool(testingPool({ ...options, sharedMemoryLane: { directory: base, thresholdBytes: 256 * 1024 } }));
  const inline = new WorkerPool(testingPool({ ...options, sharedMemoryLane: false }));
  const streams = pool.client(StreamingTestServiceDefinition);
  const inlineStreams = inline.client(StreamingTestServiceDefinition);
  beforeAll(() => Promise.all([pool.start(), inline.start()]));
  afterAll(() => Promise.all([pool.shutdown(), inline.shutdown()]));

  const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
    const out: T[] = [];
    for await (const m of it) out.push(m);
    return out;
  };

  test("server, client and bidirectional streams: large responses travel as lane files, requests inline, with the same results as without the lane; no file is left", async () => {
    const [dir] = laneDirs(process.pid);
    const created = new Set<string>();
    // inotify events may arrive after the call has finished: wait for them on the watcher.
    const watcher: FSWatcher = watch(dir, (_event, name) => name && created.add(name));
    const createdCount = async (prefix: string, n: number): Promise<number> => {
      await eventually(() => [...created].filter((f) => f.startsWith(prefix)).length >= n, 10_000);
      const count = [...created].filter((f) => f.startsWith(prefix)).length;
      created.clear();
      return count;
    };
    try {
      const count = { n: 5, payloadSize: 1024 * 1024 + 7 };
      const served = await collect(streams.count(count));
      const plain = await collect(inlineStreams.count(count));
      expect(served.map((m) => ({ index: m.index, size: m.payload.length }))).toEqual(plain.map((m) => ({ index: m.index, size: m.payload.length })));
      expect(await createdCount(`p${served[0].workerPid}-`, 5)).toBe(5);

      const chunks = Array.from({ length: 4 }, () => ({ data: randomBytes(600 * 1024) }));
      const uploaded = await streams.upload(chunks);
      expect(uploaded.bytes).toBe((await inlineStreams.upload(chunks)).bytes);
      expect(uploaded.bytes).toBe(4 * 600 * 1024);
      expect(created.size).toBe(0); // stream requests stay inline (they cost more CPU through files)

      const texts = ["a".repeat(300 * 1024), "small", "b".repeat(700 * 1024)];
      const chatted = await collect(streams.chat(texts.map((text) => ({ text }))));
      expect(chatted.map((m) => m.text)).toEqual((await collect(inlineStreams.chat(texts.map((text) => ({ text }))))).map((m) => m.text));
      expect(chatted.map((m) => m.text.length)).toEqual([300 * 1024, 5, 700 * 1024]);
      expect(await createdCount(`p${served[0].workerPid}-`, 2)).toBe(2); // the two large answers; requests and "small" inline
      expect(messageFiles()).toEqual([]);
    } finally {
      watcher.close();
    }
  });

  test("a slow consumer cannot make the producer fill the lane: its unread files stay under the bound; leaving the stream removes them", async () => {
    const tag = `slow-${Date.now()}`;
    const stream = streams.count({ n: 64, payloadSize: 1024 * 1024, tag });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    const produced = async (): Promise<number> => (await streams.streamStats({})).produced[tag] ?? 0;
    // Past the bound the producer goes inline, where HTTP/2 flow control stops it.
    expect(await eventually(async () => (await produced()) >= 10, 30_000)).toBe(true);
    // Spares are not unread messages (their bound, MAX_SPARE_FILES a side, is the lane's own).
    const unreadBytes = laneDirs(process.pid).flatMap((d) => readdirSync(d).filter((n) => !isSpareFileName(n)).map((n) => statSync(join(d, n)).size)).reduce((a, b) => a + b, 0);
    expect(unreadBytes).toBeLessThanOrEqual(8 * 1024 * 1024 + 1024 * 1024);
    expect(await produced()).toBeLessThan(64);
    await iterator.return?.();
    expect(await eventually(() => laneFiles().length === 0, 20_000)).toBe(true);
  });

  test("kill -9 of the worker in the middle of a stream: the call fails UNAVAILABLE and no file is left on either side", async () => {
    const upload = pushable<{ data: Buffer; tag: string }>();
    const uploading = streams.upload(upload);
    await upload.write({ data: randomBytes(1024 * 1024), tag: "" });
    const stream = streams.count({ n: 64, payloadSize: 1024 * 1024, tag: `kill-${Date.now()}` });
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(await eventually(() => laneFiles().length > 0, 20_000)).toBe(true); // the producer gets ahead of the consumer, in lane files
    process.kill(first.value.workerPid, "SIGKILL");
    const err = await rejection((async () => {
      for (;;) if ((await iterator.next()).done) return;
    })());
    expect(err.code()).toBe(14);
    upload.end();
    expect((await rejection(uploading)).code()).toBe(14);
    expect(await eventually(() => laneFiles().length === 0, 20_000)).toBe(true);
    await eventually(() => pool.health().ready === 1, 30_000);
  });
});

describeShm("a lane file that is not what its reference says is a protocol error, never a hang or a wrong message", () => {
  test.each([
    ["response-truncate", /truncated/],
    ["response-nonce", /nonce/],
    ["response-missing", /missing/],
    ["request-truncate", /truncated/],
  ])("%s: INTERNAL, category protocol; the pool keeps serving and no file is left", async (fault, detail) => {
    const pool = new WorkerPool(
      testingPool({ workers: 1, script: join(WORKERS, "lane_fault_worker.py"), env: { PROCGRPC_TEST_LANE_FAULT: fault }, sharedMemoryLane: { directory: base, thresholdBytes: 256 * 1024 } }),
    );
    await pool.start();
    try {
      const client = pool.client(TestServiceDefinition);
      const err = await rejection(client.echo({ payload: randomBytes(1024 * 1024) }));
      expect({ code: err.code(), category: err.category }).toEqual({ code: 13, category: "protocol" });
      expect(err.details()).toMatch(/^shared-memory lane: /);
      expect(err.details()).toMatch(detail);
      expect((await client.echo({ text: "still serving" })).text).toBe("still serving");
      expect(await eventually(() => laneFiles().length === 0, 10_000)).toBe(true);
    } finally {
      await pool.shutdown();
    }
  });
});

describeShm("configuration and fallback", () => {
  test("a directory without room for the message (the reserve) sends it over the socket, with one warning", async () => {
    const warnings: string[] = [];
    const logger: Logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (_o, msg) => warnings.push(msg ?? "") };
    const pool = new WorkerPool(testingPool({ workers: 1, logger, sharedMemoryLane: { directory: base, thresholdBytes: 0, reserveBytes: Number.MAX_SAFE_INTEGER } }));
    await pool.start();
    try {
      const client = pool.client(TestServiceDefinition);
      const payload = randomBytes(1024 * 1024);
      const { value, created } = await filesCreatedDuring(() => client.echo({ payload }));
      expect(Buffer.compare(Buffer.from(value.payload), payload)).toBe(0);
      await client.echo({ payload });
      expect(created).toEqual([]);
      // Once per pool on the Node side (requests), once per worker process (responses).
      expect(warnings.filter((w) => w.includes("shared-memory lane: a large message goes over the socket"))).toHaveLength(1);
      expect(warnings.filter((w) => w.includes("shared-memory lane: a large response goes over the socket"))).toHaveLength(1);
    } finally {
      await pool.shutdown();
    }
  });

  test("sharedMemoryLane: false creates no lane directory; bad options are TypeErrors", async () => {
    const pool = new WorkerPool(testingPool({ workers: 1, sharedMemoryLane: false }));
    await pool.start();
    try {
      const payload = randomBytes(1024 * 1024);
      expect(Buffer.compare(Buffer.from((await pool.client(TestServiceDefinition).echo({ payload })).payload), payload)).toBe(0);
      expect(laneDirs(process.pid)).toEqual([]);
    } finally {
      await pool.shutdown();
    }
    expect(() => new WorkerPool(testingPool({ sharedMemoryLane: { thresholdBytes: -1 } }))).toThrow(TypeError);
    expect(() => new WorkerPool(testingPool({ sharedMemoryLane: { directory: "" } }))).toThrow(TypeError);
  });
});

describeShm("kill -9 mid-transfer leaves no lane file", () => {
  test.each([
    ["while the worker reads the request", "request-stall"],
    ["while the worker writes the response", "response-stall"],
  ])("of the worker %s: the call fails UNAVAILABLE and the worker's and the call's files are removed", async (_when, fault) => {
    // The fault worker stops for good at that point of a 64 MiB transfer and says so with a mark
    // file: the kill lands mid-transfer however loaded the machine is.
    const markDir = mkdtempSync(join(tmpdir(), "pglane-stall-"));
    const mark = join(markDir, "stalled");
    const pool = new WorkerPool(
      testingPool({
        workers: 1,
        script: join(WORKERS, "lane_fault_worker.py"),
        env: { PROCGRPC_TEST_LANE_FAULT: fault, PROCGRPC_TEST_LANE_STALL_MARK: mark },
        sharedMemoryLane: { directory: base },
      }),
    );
    await pool.start();
    try {
      const client = pool.client(TestServiceDefinition);
      const pid = pool.health().workers[0].pid as number;
      const calling = rejection(client.echo({ payload: Buffer.alloc(64 * 1024 * 1024, 1) }, { timeoutMs: 120_000 }));
      expect(await eventually(() => existsSync(mark), 60_000)).toBe(true);
      expect(laneFiles().length).toBeGreaterThan(0);
      process.kill(pid, "SIGKILL");
      expect((await calling).code()).toBe(14);
      expect(await eventually(() => !isAlive(pid), 20_000)).toBe(true);
      expect(await eventually(() => pool.health().workers[0].pid !== pid && pool.health().ready === 1, 30_000)).toBe(true);
      expect(await eventually(() => laneFiles().length === 0, 20_000)).toBe(true);
      // The restarted worker serves large calls through the lane again.
      const payload = randomBytes(1024 * 1024);
      expect(Buffer.compare(Buffer.from((await client.echo({ payload }, { timeoutMs: 60_000 })).payload), payload)).toBe(0);
    } finally {
      await pool.shutdown();
      rmSync(markDir, { recursive: true, force: true });
    }
  });

  test("of the Node process: its worker exits and the next pool's start removes the dead pool's lane directory", async () => {
    const { holder, line } = await startHolder("lane-holder.ts", { LANE_BASE: base });
    const { workers } = JSON.parse(line) as { workers: number[] };
    const holderPid = holder.pid as number;
    // Mid-transfer: a 64 MiB message is in the holder's lane directory.
    expect(await eventually(() => laneDirs(holderPid).some((d) => existsSync(d) && readdirSync(d).length > 0), 60_000, 1)).toBe(true);
    const exited = new Promise((r) => holder.once("exit", r));
    holder.kill("SIGKILL");
    await exited;
    expect(await eventually(() => workers.every((pid) => !isAlive(pid)), 20_000)).toBe(true);
    const next = new WorkerPool(testingPool({ workers: 1, sharedMemoryLane: { directory: base } }));
    await next.start();
    try {
      expect(laneDirs(holderPid)).toEqual([]);
    } finally {
      await next.shutdown();
    }
    expect(laneDirs()).toEqual([]);
  });
});
