// RemotePool against workers listening on loopback TCP: the same typed client (unary and streams),
// dynamic client, middleware and RpcError model as WorkerPool; mTLS; routing methods between a
// local pool and a remote one. Multi-host behaviour is in remote-hosts.test.ts.
import { join } from "node:path";
import { Metadata } from "@grpc/grpc-js";
import { RemotePool, RpcError, Status, WorkerPool, routedClient, silentLogger, type RemotePoolOptions, type UnaryMiddleware } from "../src";
import { StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { makePki, type TestPki } from "./helpers/certs";
import { ROOT, WORKERS, testingPool } from "./helpers/env";
import { startRemoteWorker, type RemoteWorker } from "./helpers/remote-worker";

jest.setTimeout(30_000);

const TOKEN = "loopback-token";
let pki: TestPki;
let tlsWorker: RemoteWorker;
let mtlsWorker: RemoteWorker;
let streamWorker: RemoteWorker;
const pools: { shutdown(o?: { graceMs?: number }): Promise<void> }[] = [];

beforeAll(async () => {
  pki = makePki(["IP:127.0.0.1", "DNS:localhost"]);
  const tls = { PROCGRPC_TLS_CERT: pki.server.cert, PROCGRPC_TLS_KEY: pki.server.key, PROCGRPC_TOKEN: TOKEN };
  // One at a time, so that a failure leaves only already-assigned workers for afterAll to stop.
  tlsWorker = await startRemoteWorker({ args: ["--listen", "127.0.0.1:0"], env: tls });
  mtlsWorker = await startRemoteWorker({ args: ["--listen", "127.0.0.1:0"], env: { ...tls, PROCGRPC_TLS_CLIENT_CA: pki.ca.cert } });
  streamWorker = await startRemoteWorker({ args: ["--listen", "127.0.0.1:0"], env: tls, script: join(WORKERS, "streaming_worker.py") });
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.shutdown({ graceMs: 0 })));
  await Promise.all([tlsWorker, mtlsWorker, streamWorker].map((w) => w?.stop()));
  pki?.remove();
});

function remote(worker: RemoteWorker, overrides: Partial<RemotePoolOptions> = {}): RemotePool {
  const pool = new RemotePool({ targets: [worker.listen], tls: { ca: pki.read(pki.ca.cert) }, token: TOKEN, logger: silentLogger, ...overrides });
  pools.push(pool);
  return pool;
}

test("unary calls: typed client, deadline sent to Python, metadata, request id, headers", async () => {
  const pool = remote(tlsWorker);
  await pool.start();
  const test = pool.client(TestServiceDefinition);
  let header: Metadata | undefined;
  const res = await test.echo({ text: "hi" }, { timeoutMs: 4000, metadata: { "x-mine": "1" }, requestId: "rid-1", onHeader: (md) => (header = md) });
  expect(res.text).toBe("hi");
  expect(res.workerPid).toBe(tlsWorker.pid);
  expect(res.timeRemainingSeconds).toBeGreaterThan(0);
  expect(res.timeRemainingSeconds).toBeLessThanOrEqual(4);
  expect(res.metadata).toMatchObject({ "x-mine": "1", "x-request-id": "rid-1", authorization: `Bearer ${TOKEN}` });
  expect(header).toBeInstanceOf(Metadata);
  expect(pool.health()).toMatchObject({ state: "running", total: 1, ready: 1, targets: [{ id: tlsWorker.listen, state: "READY", inFlight: 0, served: 1 }] });
});

test("errors: the same RpcError model, workerId is the target", async () => {
  const test = (await started(remote(tlsWorker))).client(TestServiceDefinition);
  const err = (await test.fail({ code: Status.NOT_FOUND, details: "no such thing" }).catch((e: unknown) => e)) as RpcError;
  expect(err).toBeInstanceOf(RpcError);
  expect(err.code()).toBe(Status.NOT_FOUND);
  expect(err.category).toBe("worker");
  expect(err.workerId).toBe(tlsWorker.listen);
  expect(err.method).toBe("/testing.v1.TestService/Fail");
  const late = (await test.sleep({ ms: 2000 }, { timeoutMs: 100 }).catch((e: unknown) => e)) as RpcError;
  expect(late.code()).toBe(Status.DEADLINE_EXCEEDED);
  expect(late.category).toBe("timeout");
  expect(late.timeoutKind).toBe("per-call");
});

test("streams: server, client and bidirectional, with the token", async () => {
  const streams = (await started(remote(streamWorker))).client(StreamingTestServiceDefinition);
  const counted: number[] = [];
  for await (const m of streams.count({ n: 4 })) counted.push(m.index);
  expect(counted).toEqual([0, 1, 2, 3]);
  async function* chunks(): AsyncGenerator<{ data: Buffer }> {
    for (let i = 0; i < 3; i++) yield { data: Buffer.alloc(10, i) };
  }
  const uploaded = await streams.upload(chunks());
  expect(uploaded.bytes).toBe(30);
  const replies: string[] = [];
  async function* said(): AsyncGenerator<{ text: string }> {
    yield { text: "a" };
    yield { text: "b" };
  }
  for await (const r of streams.chat(said())) replies.push(r.text);
  expect(replies).toHaveLength(2);
});

test("middleware and resilience options apply unchanged", async () => {
  const seen: string[] = [];
  const record: UnaryMiddleware = async (call, next) => {
    seen.push(call.method.path);
    return next(call);
  };
  const pool = await started(remote(tlsWorker, { middleware: [record], retry: { maxAttempts: 3, budget: false } }));
  const test = pool.client(TestServiceDefinition);
  await test.echo({ text: "x" });
  expect(seen).toEqual(["/testing.v1.TestService/Echo"]);
  // UNAVAILABLE from the worker on an idempotent call: retried by procgrpc's retry middleware.
  const err = (await test.fail({ code: Status.UNAVAILABLE, details: "busy" }, { idempotent: true }).catch((e: unknown) => e)) as RpcError;
  expect(err.code()).toBe(Status.UNAVAILABLE);
  expect(err.attempts).toBe(3);
  expect(pool.resilience.counters().retries).toBe(2);
});

test("dynamic client (no codegen) through the remote pool", async () => {
  const pool = await started(remote(tlsWorker));
  const dyn = pool.dynamicClient(join(ROOT, "proto", "testing", "v1", "testing.proto"), "testing.v1.TestService", { includeDirs: [join(ROOT, "proto")] });
  const res = await dyn.call("Echo", { text: "dyn" });
  expect(res.text).toBe("dyn");
});

test("mTLS: a client certificate is required; without it the call fails as a connection error", async () => {
  const withCert = await started(remote(mtlsWorker, { tls: { ca: pki.read(pki.ca.cert), cert: pki.read(pki.client.cert), key: pki.read(pki.client.key) } }));
  expect((await withCert.client(TestServiceDefinition).echo({ text: "m" })).workerPid).toBe(mtlsWorker.pid);
  const without = await started(remote(mtlsWorker, { checkOnStart: false }));
  const err = (await without.client(TestServiceDefinition).echo({ text: "m" }, { timeoutMs: 3000 }).catch((e: unknown) => e)) as RpcError;
  expect(err).toBeInstanceOf(RpcError);
  expect(err.code()).toBe(Status.UNAVAILABLE);
  expect(err.category).toBe("connection");
});

test("routedClient: latency-critical methods on local workers, heavy ones remote", async () => {
  const local = new WorkerPool(testingPool({ workers: 1 }));
  pools.push(local);
  await local.start();
  const far = await started(remote(tlsWorker));
  const test = routedClient(TestServiceDefinition, { default: local, methods: { sleep: far } });
  const near = await test.echo({ text: "near" });
  const slept = await test.sleep({ ms: 1 });
  expect(near.workerPid).toBe(local.health().workers[0].pid);
  expect(slept.workerPid).toBe(tlsWorker.pid);
  expect(() => routedClient(TestServiceDefinition, { default: local, methods: { nope: far } as never })).toThrow(/routes.methods.nope is not a method/);
});

test("option validation: plaintext to a non-loopback target, bad targets, half a client certificate", () => {
  expect(() => new RemotePool({ targets: ["dns:///workers.internal:50051"], logger: silentLogger })).toThrow(/refusing plaintext gRPC to dns:\/\/\/workers.internal:50051/);
  expect(() => new RemotePool({ targets: ["127.0.0.1:1", "localhost:2", "ipv4:127.0.0.1:3,127.0.0.2:4", "ipv6:[::1]:5"], logger: silentLogger })).not.toThrow();
  expect(() => new RemotePool({ targets: [], logger: silentLogger })).toThrow(/non-empty array/);
  expect(() => new RemotePool({ targets: ["10.0.0.5:1"], tls: { cert: "x" }, logger: silentLogger })).toThrow(/tls.cert and tls.key go together/);
});

test("calls before start() and after shutdown() fail with FAILED_PRECONDITION", async () => {
  const pool = remote(tlsWorker);
  const test = pool.client(TestServiceDefinition);
  await expect(test.echo({ text: "x" })).rejects.toMatchObject({ category: "lifecycle" });
  await pool.start();
  await pool.shutdown();
  const err = (await test.echo({ text: "x" }).catch((e: unknown) => e)) as RpcError;
  expect(err.code()).toBe(Status.FAILED_PRECONDITION);
  expect(err.details()).toBe("pool is shut down");
});

async function started(pool: RemotePool): Promise<RemotePool> {
  await pool.start();
  return pool;
}

test("health-aware balancing: a target answering NOT_SERVING gets no calls until it serves again", async () => {
  const tls = { PROCGRPC_TLS_CERT: pki.server.cert, PROCGRPC_TLS_KEY: pki.server.key, PROCGRPC_TOKEN: TOKEN };
  const a = await startRemoteWorker({ args: ["--listen", "127.0.0.1:0"], env: tls });
  const b = await startRemoteWorker({ args: ["--listen", "127.0.0.1:0"], env: tls });
  try {
    const pool = await started(new RemotePool({ targets: [a.listen, b.listen], tls: { ca: pki.read(pki.ca.cert) }, token: TOKEN, logger: silentLogger, healthCheckIntervalMs: 100 }));
    pools.push(pool);
    const onlyA = (await started(remote(a))).client(TestServiceDefinition);
    const test = pool.client(TestServiceDefinition);
    const pids = async (): Promise<Set<number>> => new Set((await Promise.all(Array.from({ length: 20 }, () => test.echo({})))).map((r) => r.workerPid));
    expect(await pids()).toEqual(new Set([a.pid, b.pid]));

    await onlyA.setServing({ serving: false });
    await waitFor(() => pool.health().targets.find((t) => t.id === a.listen)?.serving === "NOT_SERVING");
    expect(await pids()).toEqual(new Set([b.pid]));

    await onlyA.setServing({ serving: true });
    await waitFor(() => pool.health().targets.find((t) => t.id === a.listen)?.serving === "SERVING");
    expect(await pids()).toEqual(new Set([a.pid, b.pid]));
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(check()).toBe(true);
}
