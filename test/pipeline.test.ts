// The pipelined transport under stress: 100,000 interleaved calls with random deadlines and
// cancellations, every call answered exactly once, and no call state left behind.
import { Client, credentials } from "@grpc/grpc-js";
import { RpcError, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { runningHandlers } from "../src/transport/worker-introspection";
import { testingPool } from "./helpers/env";

jest.setTimeout(240_000);

const pool = new WorkerPool(testingPool({ workers: 2, transport: "pipelined", maxInFlightPerWorker: 64, maxQueue: 100_000 }));
const client = pool.client(TestServiceDefinition);

beforeAll(() => pool.start());
afterAll(() => pool.shutdown());

test("100,000 interleaved calls with random deadlines and cancellations: each answered once, correctly, and no state leaks", async () => {
  const total = 100_000;
  let ok = 0;
  let timedOut = 0;
  let cancelled = 0;
  const settledTwice: number[] = [];
  const wrong: string[] = [];
  let next = 0;
  // A deterministic pseudo-random sequence, so a failure can be replayed.
  let seed = 42;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

  async function one(i: number): Promise<void> {
    const r = random();
    const text = `call-${i}`;
    const controller = r < 0.05 ? new AbortController() : undefined;
    if (controller) setTimeout(() => controller.abort(), Math.floor(random() * 3));
    let settled = 0;
    try {
      const call = r < 0.02 ? client.sleep({ ms: 20 }, { timeoutMs: 1 + Math.floor(random() * 10) }) : client.echo({ text }, { timeoutMs: r < 0.1 ? 1 + Math.floor(random() * 5) : 10_000, signal: controller?.signal });
      const reply = await call;
      settled++;
      if ("text" in reply && reply.text !== text) wrong.push(`${text} got ${reply.text}`);
      ok++;
    } catch (err) {
      settled++;
      if (!(err instanceof RpcError)) throw err;
      if (err.code() === Status.DEADLINE_EXCEEDED) timedOut++;
      else if (err.code() === Status.CANCELLED) cancelled++;
      else wrong.push(`${text}: ${err.message}`);
    }
    if (settled !== 1) settledTwice.push(i);
  }

  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < total) await one(next++);
    }),
  );

  expect(wrong).toEqual([]);
  expect(settledTwice).toEqual([]);
  expect(ok + timedOut + cancelled).toBe(total);
  expect(ok).toBeGreaterThan(total * 0.8);
  expect(timedOut + cancelled).toBeGreaterThan(0);
  // No call state left: not in the pool's slots, not running in Python.
  expect(pool.health().workers.map((w) => w.inFlight)).toEqual([0, 0]);
  expect(pool.health().queued).toBe(0);
  const running = await Promise.all(pool.health().workers.map((w) => runningInWorker(w.socket)));
  expect(running).toEqual([0, 0]);
  console.log(`pipelined stress: ${ok} ok, ${timedOut} deadline exceeded, ${cancelled} cancelled`);
});

/** Handlers still executing in the worker (procgrpc.internal.v1.Worker/Running), once settled. */
async function runningInWorker(socket: string): Promise<number> {
  const probe = new Client(`unix:${socket}`, credentials.createInsecure());
  try {
    let running = await runningHandlers(probe, new Date(Date.now() + 2000));
    for (let attempt = 0; attempt < 40 && running.length > 0; attempt++) {
      await new Promise((r) => setTimeout(r, 50));
      running = await runningHandlers(probe, new Date(Date.now() + 2000));
    }
    return running.length;
  } finally {
    probe.close();
  }
}
