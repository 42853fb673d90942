/**
 * The connection, protocol and lifecycle rows of the error model (docs/errors.md), each
 * produced by a real fault: kill -9, a deleted socket, a refused socket, a peer that is not
 * gRPC, an HTTP/2 peer that breaks the gRPC protocol, and a pool whose only worker cannot restart.
 */
import { mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RpcError, Status, WorkerPool, isConnectionError, isLifecycleError, isProtocolError } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { unaryMethodOf } from "../src/call/method";
import type { UnaryMethod } from "../src/call/method";
import { WORKERS, testingPool, rejection } from "./helpers/env";
import { brokenHttp2Peer, callOverFreshConnection, garbagePeer, refusingSocket } from "./helpers/fake-peers";

const echo = unaryMethodOf("testing.v1.TestService", TestServiceDefinition.methods.echo);
const sleep = unaryMethodOf("testing.v1.TestService", TestServiceDefinition.methods.sleep);

const tmp = mkdtempSync(join(tmpdir(), "pge-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


describe("a worker that dies or cannot come back", () => {
  // The only worker refuses every restart (no_restart_worker.py), so that once it is killed
  // the pool has no ready worker at all.
  const pool = new WorkerPool(
    testingPool({ workers: 1, script: join(WORKERS, "no_restart_worker.py"), waitForReadyMs: 300, env: { PROCGRPC_TEST_MARKER: join(tmp, "started-once") } }),
  );
  const client = pool.client(TestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("kill -9 during a call fails it at once with UNAVAILABLE (connection), not at its deadline", async () => {
    const before = (await client.stats({})).calls;
    // Two calls held in Python: one plain (Sleep is not idempotent), one declared idempotent.
    const plain = rejection(client.sleep({ ms: 30000, tag: "killed" }, { timeoutMs: 50000 }));
    const idempotent = rejection(client.sleep({ ms: 30000 }, { timeoutMs: 50000, idempotent: true }));
    // Both calls are inside the servicer once the worker has counted them (this Stats is the third).
    while ((await client.stats({})).calls < before + 3) await new Promise((r) => setTimeout(r, 20));
    const pid = pool.health().workers[0].pid as number;
    process.kill(pid, "SIGKILL");
    for (const err of [await plain, await idempotent]) {
      expect(err.code()).toBe(Status.UNAVAILABLE);
      expect(err.category).toBe("connection");
      expect(isConnectionError(err)).toBe(true);
      expect(err.timeoutKind).toBeUndefined();
      expect(err.reachedWorker).toBe(true);
      expect(err.countsTowardSlo).toBe(true);
      expect(err.method).toBe("/testing.v1.TestService/Sleep");
      expect(err.workerId).toBe("w0");
      expect(err.message).toBe(`UNAVAILABLE: ${err.details()} (/testing.v1.TestService/Sleep)`);
    }
    // It may have run: retrying is safe only for an idempotent call.
    expect((await plain).retryable).toBe(false);
    expect((await idempotent).retryable).toBe(true);
  });

  test("no ready worker: UNAVAILABLE `no healthy workers available` (lifecycle), retryable, outside the SLO", async () => {
    const pid = pool.health().workers[0].pid;
    if (pool.health().ready > 0 && pid) {
      const exited = new Promise((r) => pool.once("workerExit", r));
      process.kill(pid, "SIGKILL");
      await exited;
    }
    expect(pool.health().ready).toBe(0);
    const err = await rejection(client.echo({ text: "anyone?" }));
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.details()).toMatch(/^no healthy workers available/);
    expect(err.category).toBe("lifecycle");
    expect(isLifecycleError(err)).toBe(true);
    expect(err.retryable).toBe(true);
    expect(err.countsTowardSlo).toBe(false);
    expect(err.reachedWorker).toBe(false);
    expect(err.method).toBe("/testing.v1.TestService/Echo");
  });
});

describe("sockets", () => {
  const pool = new WorkerPool(testingPool({ workers: 1 }));
  const client = pool.client(TestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("a deleted socket: the open connection keeps working; a new connection fails with UNAVAILABLE, not reached", async () => {
    const socket = pool.health().workers[0].socket;
    unlinkSync(socket);
    // An established HTTP/2 connection does not need the file: calls still succeed.
    expect((await client.echo({ text: "still here" })).text).toBe("still here");
    // Any new connection (a channel reconnecting, another process) finds nothing to connect to.
    const err = await rejection(callOverFreshConnection(socket, sleep, { ms: 1 }));
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.category).toBe("connection");
    expect(err.details()).toContain("ENOENT");
    expect(err.reachedWorker).toBe(false);
    // It certainly did not run, so even a non-idempotent call may be retried.
    expect(err.retryable).toBe(true);
    expect(err.countsTowardSlo).toBe(true);
  });

  test("a refused socket (a file nothing listens on): UNAVAILABLE, not reached, retryable", async () => {
    const socket = join(tmp, "refused.sock");
    refusingSocket(socket);
    const err = await rejection(callOverFreshConnection(socket, sleep, { ms: 1 }));
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.category).toBe("connection");
    expect(err.details()).toContain("ECONNREFUSED");
    expect(err.reachedWorker).toBe(false);
    expect(err.retryable).toBe(true);
  });
});

describe("peers that do not speak gRPC", () => {
  test("a Unix socket served by something that is not HTTP/2: INTERNAL (protocol), not retryable, outside the SLO", async () => {
    const socket = join(tmp, "garbage.sock");
    const server = await garbagePeer(socket);
    try {
      const err = await rejection(callOverFreshConnection(socket, echo, { text: "hello?" }, { idempotent: true }));
      expect(err.code()).toBe(Status.INTERNAL);
      expect(err.category).toBe("protocol");
      expect(isProtocolError(err)).toBe(true);
      expect(err.details()).toMatch(/^the peer does not speak gRPC over HTTP\/2: .*Protocol error/);
      expect(err.retryable).toBe(false);
      expect(err.countsTowardSlo).toBe(false);
      expect(err.method).toBe("/testing.v1.TestService/Echo");
    } finally {
      server.close();
    }
  });

  const raw = (name: string): UnaryMethod<unknown, Buffer> => ({
    path: `/fake.v1.Broken/${name}`,
    serialize: () => Buffer.alloc(0),
    deserialize: (b) => b,
    idempotent: true,
  });

  test.each([
    ["BadStatus", /^invalid grpc-status 42 from worker: made up$/],
    ["NanStatus", /^invalid grpc-status NaN from worker: made up$/],
    ["Reset", /^Received RST_STREAM with code 0 \(Call ended without gRPC status\)$/],
    ["NotFound", /^Received HTTP status code 404$/],
  ])("an HTTP/2 peer that breaks gRPC (%s): INTERNAL (protocol)", async (name, details) => {
    const socket = join(tmp, `h2-${name}.sock`);
    const server = await brokenHttp2Peer(socket);
    try {
      const err = await rejection(callOverFreshConnection(socket, raw(name), {}));
      expect(err.code()).toBe(Status.INTERNAL);
      expect(err.category).toBe("protocol");
      expect(err.details()).toMatch(details);
      expect(err.retryable).toBe(false);
      expect(err.countsTowardSlo).toBe(false);
    } finally {
      server.close();
    }
  });
});

test("a full queue: RESOURCE_EXHAUSTED (lifecycle), not reached, retryable, outside the SLO", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, maxInFlightPerWorker: 1, maxQueue: 1 }));
  await pool.start();
  try {
    const client = pool.client(TestServiceDefinition);
    const running = client.sleep({ ms: 300 });
    const queued = client.sleep({ ms: 1 });
    const err = await rejection(client.sleep({ ms: 1 }));
    expect(err.code()).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.details()).toBe("pool queue is full (1 calls waiting)");
    expect(err.category).toBe("lifecycle");
    expect(err.reachedWorker).toBe(false);
    expect(err.retryable).toBe(true);
    expect(err.countsTowardSlo).toBe(false);
    await Promise.all([running, queued]);
  } finally {
    await pool.shutdown();
  }
});
