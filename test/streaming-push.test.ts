// pushable() with real workers on the suite's transport: ping-pong over a bidirectional call, a
// client stream fed by writes, backpressure from a servicer that stops reading, cancel(), and a
// failed call rejecting the writes that wait on it.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, credentials } from "@grpc/grpc-js";
import { RpcError, Status, WorkerPool, pushable } from "../src";
import { StreamStatsRequest, StreamStatsResponse, StreamingTestServiceDefinition, type ChatRequest, type UploadRequest } from "../src/gen/testing/v1/streaming";
import { WORKERS, eventually, rejection, testingPool } from "./helpers/env";

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const stateDir = mkdtempSync(join(tmpdir(), "procgrpc-push-"));
const pool = new WorkerPool(testingPool({ workers: 1, script: join(WORKERS, "recording_worker.py"), env: { PROCGRPC_TEST_STATE_DIR: stateDir } }));
const streams = pool.client(StreamingTestServiceDefinition);
let probe: Client;

beforeAll(async () => {
  await pool.start();
  probe = new Client(`unix:${pool.health().workers[0].socket}`, credentials.createInsecure());
});
afterAll(async () => {
  probe.close();
  await pool.shutdown();
  rmSync(stateDir, { recursive: true, force: true });
});

/** What the worker has observed (asked on its own socket, past the pool). */
function stats(): Promise<StreamStatsResponse> {
  return new Promise((resolve, reject) =>
    probe.makeUnaryRequest(
      "/testing.v1.StreamingTestService/StreamStats",
      (r: StreamStatsRequest) => Buffer.from(StreamStatsRequest.encode(r).finish()),
      (b: Buffer) => StreamStatsResponse.decode(b),
      {},
      (err, res) => (err || !res ? reject(err) : resolve(res)),
    ),
  );
}

test("ping-pong over a bidirectional call: send, await the answer, decide the next message from it", async () => {
  const requests = pushable<Partial<ChatRequest>>();
  const replies = streams.chat(requests)[Symbol.asyncIterator]();
  let text = "a";
  const seen: string[] = [];
  for (let round = 0; round < 5; round++) {
    await requests.write({ text }); // before anything was read: the call started when chat() was called
    const reply = await replies.next();
    expect(reply.done).toBe(false);
    seen.push(reply.value.text);
    text = `${reply.value.text}${String.fromCharCode(98 + round)}`; // the next message depends on the answer
  }
  requests.end();
  expect(await replies.next()).toEqual({ done: true, value: undefined });
  expect(seen).toEqual(["A", "AB", "ABC", "ABCD", "ABCDE"]);
});

test("ping-pong with an async def servicer, written with for await", async () => {
  const requests = pushable<{ text: string }>();
  await requests.write({ text: "one" });
  const answers: string[] = [];
  for await (const reply of streams.asyncChat(requests)) {
    answers.push(reply.text);
    if (answers.length === 3) requests.end();
    else await requests.write({ text: `${reply.text}!` });
  }
  expect(answers).toEqual(["eno", "!one", "!eno!"]);
});

test("a client stream fed by writes", async () => {
  const requests = pushable<Partial<UploadRequest>>();
  const summary = streams.upload(requests);
  for (let i = 0; i < 20; i++) await requests.write({ data: Buffer.alloc(1000, i) });
  requests.end();
  expect(await summary).toMatchObject({ bytes: 20_000, chunks: 20 });
});

test("backpressure: while the servicer reads nothing, writes wait; the writer stays a bounded number of messages ahead of what it read", async () => {
  const tag = "gated";
  const total = 256; // 1 MiB chunks: far more than the transport's windows and buffers hold
  const requests = pushable<Partial<UploadRequest>>();
  const summary = streams.upload(requests);
  let written = 0; // writes that resolved
  let maxBuffered = 0;
  const writer = (async () => {
    for (let i = 0; i < total; i++) {
      await requests.write({ data: Buffer.alloc(MiB, i), tag });
      written += 1;
      maxBuffered = Math.max(maxBuffered, requests.buffered);
    }
    requests.end();
  })();
  const readByServicer = async (): Promise<number> => (await stats()).produced[tag] ?? 0;

  // The servicer read chunk 1 and stopped. The writer is held back once the stream stops taking
  // messages: one taken ahead (highWaterMark 1) and one write waiting, through several round trips to the worker.
  const held = async (): Promise<boolean> => {
    for (let probeRound = 0; probeRound < 3; probeRound++) {
      const before = written;
      if (requests.buffered !== 2 || (await readByServicer()) !== 1 || written !== before) return false;
    }
    return true;
  };
  const deadline = Date.now() + 60_000;
  while (!(await held())) {
    if (Date.now() > deadline) throw new Error(`writer never held back: written ${written}, buffered ${requests.buffered}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const writtenWhileStuck = written;
  expect(await readByServicer()).toBe(1);
  expect(writtenWhileStuck).toBeLessThan(total);
  // What the HTTP/2 windows and grpc's buffers hold: tens of 1 MiB messages, not the whole upload.
  expect(writtenWhileStuck - 1).toBeLessThan(64);

  // Let the servicer read: the writes resume, and the writer's lead stays bounded all the way.
  writeFileSync(join(stateDir, tag), "");
  let maxLead = writtenWhileStuck - 1;
  while (written < total) {
    const read = await readByServicer();
    const writtenNow = written;
    maxLead = Math.max(maxLead, writtenNow - read);
    expect(writtenNow - read).toBeLessThan(64);
    await new Promise((r) => setTimeout(r, 10));
  }
  await writer;
  expect(await summary).toMatchObject({ chunks: total, bytes: total * MiB });
  expect(maxBuffered).toBeLessThanOrEqual(2);
  console.log(`pushable backpressure: ${writtenWhileStuck} writes resolved while the servicer had read 1; largest lead ${maxLead} x 1 MiB`);
});

test("cancel(reason) ends a bidirectional call with CANCELLED; the worker sees the cancellation", async () => {
  const requestId = "push-cancel-1";
  const requests = pushable<{ text: string }>();
  const replies = streams.asyncChat(requests, { requestId })[Symbol.asyncIterator]();
  await requests.write({ text: "hi" });
  expect((await replies.next()).value).toEqual({ text: "ih" });
  await requests.write({ text: "hold" }); // the servicer is busy with it when the call is cancelled
  expect(await eventually(() => existsSync(join(stateDir, `holding-${requestId}`)), 20_000)).toBe(true);
  const reason = new Error("changed my mind");
  requests.cancel(reason);
  const err = await rejection(replies.next());
  expect(err.code()).toBe(Status.CANCELLED);
  expect(err.details()).toContain("changed my mind");
  expect(err.cause).toBe(reason);
  await expect(requests.write({ text: "late" })).rejects.toThrow("pushable: write() after cancel()");
  expect(await eventually(() => existsSync(join(stateDir, `cancelled-${requestId}`)), 20_000)).toBe(true);
  expect(await eventually(() => pool.health().workers[0].inFlight === 0, 20_000)).toBe(true);
});

test("a call that fails rejects the writes waiting on it with the call's RpcError", async () => {
  // Fails before reaching a worker: the stream never reads the pushable.
  const requests = pushable<Partial<UploadRequest>>({ highWaterMark: 0 });
  const summary = streams.upload(requests, { timeoutMs: 0 });
  const write = requests.write({ data: Buffer.from("x") });
  const err = await rejection(summary);
  expect(err.code()).toBe(Status.DEADLINE_EXCEEDED);
  await expect(write).rejects.toBe(err);
  await expect(requests.write({ data: Buffer.from("y") })).rejects.toBeInstanceOf(RpcError);

  // Fails before starting, bidirectional: the same.
  const stopped = new WorkerPool(testingPool({ workers: 1, script: join(WORKERS, "streaming_worker.py") }));
  const chat = stopped.client(StreamingTestServiceDefinition).chat;
  const early = pushable<Partial<ChatRequest>>({ highWaterMark: 0 });
  const replies = chat(early);
  const w = early.write({ text: "anyone?" });
  const notStarted = await rejection(replies[Symbol.asyncIterator]().next());
  expect(notStarted.category).toBe("lifecycle");
  await expect(w).rejects.toBe(notStarted);
  await stopped.shutdown();
});
