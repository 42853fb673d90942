// Flow control end to end: a slow consumer slows the producer on the other side, so memory
// stays bounded however much is streamed.
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Client, credentials } from "@grpc/grpc-js";
import { WorkerPool } from "../src";
import { StreamStatsRequest, StreamStatsResponse, StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { WORKERS, testingPool } from "./helpers/env";

jest.setTimeout(180_000);

const MiB = 1024 * 1024;
const pool = new WorkerPool(testingPool({ workers: 1, script: join(WORKERS, "streaming_worker.py") }));
const streams = pool.client(StreamingTestServiceDefinition);
let probe: Client;

beforeAll(async () => {
  await pool.start();
  probe = new Client(`unix:${pool.health().workers[0].socket}`, credentials.createInsecure());
});
afterAll(async () => {
  probe.close();
  await pool.shutdown();
});

function produced(tag: string): Promise<number> {
  return new Promise((resolve, reject) =>
    probe.makeUnaryRequest(
      "/testing.v1.StreamingTestService/StreamStats",
      (r: StreamStatsRequest) => Buffer.from(StreamStatsRequest.encode(r).finish()),
      (b: Buffer) => StreamStatsResponse.decode(b),
      {},
      (err, res) => (err || !res ? reject(err) : resolve(res.produced[tag] ?? 0)),
    ),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A full GC on demand, so that what is measured is the memory Node still holds, not buffers no
// one has collected yet (RSS alone moved between 0 and 280 MiB here with the same code).
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

test("1 GiB through a deliberately slow consumer: the Python producer is held back and Node's memory stays bounded", async () => {
  const total = 1024; // messages of 1 MiB
  collectGarbage();
  const rssBefore = process.memoryUsage().rss;
  const buffersBefore = process.memoryUsage().arrayBuffers;
  let maxRss = rssBefore;
  let maxBuffers = buffersBefore;
  let maxLead = 0;
  let consumed = 0;
  let bytes = 0;
  // The deadline only bounds a failure: on a loaded machine 1 GiB at this pace can take longer
  // than the pool's 30 s default.
  for await (const message of streams.count({ n: total, payloadSize: MiB, tag: "gib" }, { timeoutMs: 170_000 })) {
    bytes += message.payload.length;
    consumed += 1;
    // The slow consumer: every 64 messages it stops for a while and looks at how far ahead Python got.
    if (consumed % 64 === 0) {
      await sleep(150);
      maxLead = Math.max(maxLead, (await produced("gib")) - consumed);
      maxRss = Math.max(maxRss, process.memoryUsage().rss);
      collectGarbage();
      maxBuffers = Math.max(maxBuffers, process.memoryUsage().arrayBuffers);
    }
  }
  expect(consumed).toBe(total);
  expect(bytes).toBe(total * MiB);
  // Python never ran more than a few dozen 1 MiB messages ahead of the consumer, whatever the pause...
  expect(maxLead).toBeLessThan(48);
  // ...so Node held at most tens of MiB of message buffers, not the GiB that was streamed: at most
  // the lead twice over (a message's file bytes and its decoded copy). RSS, which also counts memory
  // the allocator keeps after a GC, is logged, not asserted.
  expect(maxBuffers - buffersBefore).toBeLessThan(128 * MiB);
  console.log(`1 GiB streamed; Python's largest lead ${maxLead} messages; Node held at most ${Math.round((maxBuffers - buffersBefore) / MiB)} MiB of buffers more (RSS grew ${Math.round((maxRss - rssBefore) / MiB)} MiB)`);
});

test("a slow Python consumer of a client stream holds back the TypeScript producer", async () => {
  const pulledAt: number[] = [];
  async function* producer(): AsyncGenerator<{ data: Buffer; delayMs: number }> {
    for (let i = 0; i < 192; i++) {
      pulledAt.push(Date.now());
      yield { data: Buffer.alloc(MiB, i), delayMs: 10 };
    }
  }
  const summary = await streams.upload(producer(), { timeoutMs: 170_000 });
  expect(summary.chunks).toBe(192);
  // For each chunk i that Python read, count how many chunks TypeScript had already produced:
  // flow control keeps that lead to what the transport's windows hold (HTTP/2 windows that grpc
  // grows adaptively, tens of MiB at most), not the whole upload.
  const lead = summary.readAtMs.map((readAt, i) => pulledAt.filter((t) => t <= readAt).length - (i + 1));
  expect(Math.max(...lead)).toBeLessThan(64);
  console.log(`client stream: TypeScript's largest lead over Python ${Math.max(...lead)} chunks of 1 MiB`);
});
