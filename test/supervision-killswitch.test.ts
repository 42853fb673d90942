/**
 * Kill switches enforced by the workers too, with real workers: a client calling a worker's
 * socket directly (a RemotePool on `unix:<socket>`, as grpcurl would) is refused while a switch
 * is off, on every worker the pool starts (at start, spares, after kill -9, after a recycle),
 * and served once it is on; nobody without the pool's token can change the switches; a worker
 * refuses on the pipelined and on the plain transport alike. Waits on events and conditions.
 */
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { isSwitchedOff, RemotePool, RpcError, silentLogger, Status, WorkerPool } from "../src";
import { StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import type { KillSwitch } from "../src/resilience/kill-switch";
import { setWorkerSwitches } from "../src/pool/worker-kill-switches";
import { join } from "node:path";
import { eventually, isAlive, rejection, testingPool, TRANSPORTS, WORKERS } from "./helpers/env";
import { nextEvent } from "./helpers/supervision";

const ECHO = "/testing.v1.TestService/Echo";

/** Every process of the pool that takes (or may take) calls: rotation and spares. */
function sockets(pool: WorkerPool): { id: string; pid: number | undefined; socket: string }[] {
  const h = pool.health();
  return [...h.workers, ...h.spares].map((w) => ({ id: w.id, pid: w.pid, socket: w.socket }));
}

/** Calls Echo on one worker's socket, past the pool: its text, or the error. */
async function direct(socket: string): Promise<{ echo: RpcError | string }> {
  const remote = new RemotePool({ targets: [`unix:${socket}`], healthCheckIntervalMs: 0, logger: silentLogger });
  await remote.start();
  try {
    const client = remote.client(TestServiceDefinition);
    const echo = await client.echo({ text: "direct" }).then(
      (r) => r.text,
      (e: unknown) => e as RpcError,
    );
    return { echo };
  } finally {
    await remote.shutdown();
  }
}

function expectRefused(echo: RpcError | string, target = ECHO): void {
  expect(echo).toBeInstanceOf(RpcError);
  const err = echo as RpcError;
  expect(err.code()).toBe(Status.UNAVAILABLE);
  expect(isSwitchedOff(err)).toBe(true);
  expect(err.findDetail("ErrorInfo")).toMatchObject({ reason: "SWITCHED_OFF", domain: "procgrpc", metadata: { method: ECHO, target } });
  expect(err.message).toContain("is switched off for this pool: refused by the worker");
}

/** `KillSwitch/Set` with the given metadata (no token, a wrong one): the gRPC status code. */
function setWithout(socket: string, metadata: Metadata): Promise<number> {
  const client = new Client(`unix:${socket}`, credentials.createInsecure());
  return new Promise<number>((resolve) => {
    client.makeUnaryRequest(
      "/procgrpc.internal.v1.KillSwitch/Set",
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      metadata,
      { deadline: new Date(Date.now() + 10_000) },
      (err: ServiceError | null) => resolve(err ? err.code : Status.OK),
    );
  }).finally(() => client.close());
}

test("a switch set while the pool starts holds direct clients on every worker: at start, on the spare, after kill -9 and after a recycle; on again serves them", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2, spares: 1 }));
  // Switched off before the workers are SERVING: they were spawned without it, so the pool
  // puts it in force before it routes to them.
  const starting = pool.start();
  const off = pool.switchOff(ECHO);
  try {
    await starting;
    await off;
    const first = sockets(pool);
    expect(first).toHaveLength(3);
    for (const w of first) {
      const r = await direct(w.socket);
      expectRefused(r.echo);
    }

    // Nobody without the pool's token changes anything.
    const someone = first[0].socket;
    expect(await setWithout(someone, new Metadata())).toBe(Status.UNAUTHENTICATED);
    const wrong = new Metadata();
    wrong.set("procgrpc-control-token", "guessed");
    expect(await setWithout(someone, wrong)).toBe(Status.UNAUTHENTICATED);
    const channel = new Client(`unix:${someone}`, credentials.createInsecure());
    await expect(setWorkerSwitches(channel, "guessed", { targets: [], generation: 1000 }, new Date(Date.now() + 10_000))).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    channel.close();
    expectRefused((await direct(someone)).echo);

    // kill -9 a worker while the switch is off: the spare takes its place, a new spare starts;
    // and a recycle: every process that comes up refuses before it takes calls.
    const killed = pool.health().workers[0];
    const promoted = nextEvent(pool, "sparePromoted", undefined, 30_000);
    process.kill(killed.pid as number, "SIGKILL");
    await promoted;
    await pool.recycle(pool.health().workers[1].id);
    expect(await eventually(() => {
      const h = pool.health();
      return h.ready === 2 && h.spares.length === 1 && h.spares[0].state === "ready" && !sockets(pool).some((w) => w.pid === killed.pid);
    }, 60_000)).toBe(true);
    const after = sockets(pool);
    expect(after.filter((w) => first.some((f) => f.pid === w.pid)).length).toBeLessThan(3);
    for (const w of after) expectRefused((await direct(w.socket)).echo);
    expect(isAlive(killed.pid)).toBe(false);

    // A whole service, then on again: served everywhere.
    await pool.switchOff("testing.v1.TestService");
    await pool.switchOn(ECHO);
    expectRefused((await direct(after[0].socket)).echo, "testing.v1.TestService");
    await pool.switchOn("testing.v1.TestService");
    expect(pool.health().switchedOff).toEqual([]);
    for (const w of sockets(pool)) expect((await direct(w.socket)).echo).toBe("direct");
    expect(() => pool.switchOff("grpc.health.v1.Health")).toThrow(/internal service/);
    expect(() => pool.switchOff("/procgrpc.internal.v1.PipelineService/Pipe")).toThrow(TypeError);
  } finally {
    await pool.shutdown();
  }
});

test("a worker refuses a switched-off method on the pipelined and on the plain transport alike, without running it", async () => {
  const seen: Record<string, { code: number; message: string; info: unknown; reachedWorker: boolean }> = {};
  for (const transport of TRANSPORTS) {
    const pool = new WorkerPool(testingPool({ workers: 1, transport }));
    await pool.start();
    try {
      const client = pool.client(TestServiceDefinition);
      const before = (await client.stats({})).calls;
      await pool.switchOff(ECHO);
      // Turn only the pool's own fast path back on, so that the call reaches the worker.
      (pool as unknown as { builtIn: { killSwitch: KillSwitch } }).builtIn.killSwitch.switchOn(ECHO);
      const err = await rejection(client.echo({ text: "x" }));
      expect(isSwitchedOff(err)).toBe(true);
      seen[transport] = { code: err.code(), message: err.message, info: err.findDetail("ErrorInfo"), reachedWorker: err.reachedWorker };
      // Only the Stats calls ran in Python.
      expect((await client.stats({})).calls).toBe(before + 1);
      await pool.switchOn(ECHO);
      expect((await client.echo({ text: "on" })).text).toBe("on");
    } finally {
      await pool.shutdown();
    }
  }
  expect(seen.pipelined).toEqual(seen.unary);
  expect(seen.pipelined).toMatchObject({ code: Status.UNAVAILABLE, reachedWorker: true, info: { reason: "SWITCHED_OFF", metadata: { method: ECHO, target: ECHO } } });
});

test("a worker refuses every kind of stream to a switched-off method before its servicer runs, sync and async", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, script: join(WORKERS, "streaming_worker.py") }));
  await pool.start();
  const streams = pool.client(StreamingTestServiceDefinition);
  const service = "/testing.v1.StreamingTestService/";
  const kinds = ["Count", "AsyncCount", "Upload", "AsyncUpload", "Chat", "AsyncChat"];
  try {
    for (const m of kinds) await pool.switchOff(service + m);
    // Only the pool's own check back on: the calls reach the worker, which refuses them.
    const own = (pool as unknown as { builtIn: { killSwitch: KillSwitch } }).builtIn.killSwitch;
    for (const m of kinds) own.switchOn(service + m);
    const drain = async (it: AsyncIterable<unknown>): Promise<void> => {
      for await (const _ of it) throw new Error("a switched-off stream sent a message");
    };
    const refusals = await Promise.all([
      rejection(drain(streams.count({ n: 3 }))),
      rejection(drain(streams.asyncCount({ n: 3 }))),
      rejection(streams.upload([{ data: Buffer.from("ab") }])),
      rejection(streams.asyncUpload([{ data: Buffer.from("ab") }])),
      rejection(drain(streams.chat([{ text: "a" }]))),
      rejection(drain(streams.asyncChat([{ text: "a" }]))),
    ]);
    refusals.forEach((err, i) => {
      expect(err.code()).toBe(Status.UNAVAILABLE);
      expect(isSwitchedOff(err)).toBe(true);
      expect(err.findDetail("ErrorInfo")).toMatchObject({ metadata: { method: service + kinds[i], target: service + kinds[i] } });
    });
    const stats = await streams.streamStats({});
    expect(stats.produced).toEqual({});
    expect(stats.finishedTags).toEqual([]);
    for (const m of kinds) await pool.switchOn(service + m);
    expect((await streams.upload([{ data: Buffer.from("abc") }])).bytes).toBe(3);
  } finally {
    await pool.shutdown();
  }
});
