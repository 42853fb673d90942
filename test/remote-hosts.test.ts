// Remote workers on three "hosts": network namespaces joined by veth pairs to a bridge in the
// root namespace, where this client runs. Every address is on that private bridge (10.231.N.0/24)
// or loopback; nothing leaves the machine. Workers listen with TLS and a bearer token.
import { RemotePool, RemoteStartError, RpcError, Status, silentLogger, type RemotePoolOptions } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { makePki, type TestPki } from "./helpers/certs";
import { eventually } from "./helpers/env";
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from "./helpers/netns";
import { expectWorkerExit, startRemoteWorker, type RemoteWorker } from "./helpers/remote-worker";

jest.setTimeout(60_000);

const TOKEN = "token-for-the-netns-suite";
const PORT = 50051;
const unavailable = netnsUnavailableReason();
if (unavailable) {
  // Loud on purpose: this suite is the only proof of multi-host behaviour.
  console.error(`\n${"!".repeat(78)}\n!! test/remote-hosts.test.ts SKIPPED: network namespaces unavailable: ${unavailable}\n${"!".repeat(78)}\n`);
}
const suite = unavailable ? describe.skip : describe;

suite("remote workers on three hosts (network namespaces)", () => {
  let net: TestNetwork;
  let pki: TestPki;
  const workers: RemoteWorker[] = [];
  const pools: RemotePool[] = [];

  beforeAll(async () => {
    net = createTestNetwork(3);
    pki = makePki([...net.hosts.map((h) => `IP:${h.address}`), "DNS:workers.test"]);
    const env = { PROCGRPC_TLS_CERT: pki.server.cert, PROCGRPC_TLS_KEY: pki.server.key, PROCGRPC_TOKEN: TOKEN };
    const started = await Promise.allSettled(net.hosts.map((h) => startRemoteWorker({ args: ["--listen", `${h.address}:${PORT}`], env, netns: h.ns })));
    // Keep every worker that did start, so that afterAll stops it even if another failed.
    for (const r of started) if (r.status === "fulfilled") workers.push(r.value);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  });

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.shutdown({ graceMs: 0 })));
    await Promise.all(workers.map((w) => w.stop()));
    net?.remove();
    pki?.remove();
  });

  const allHosts = (): string => `ipv4:${net.hosts.map((h) => `${h.address}:${PORT}`).join(",")}`;
  const newPool = (overrides: Partial<RemotePoolOptions> = {}): RemotePool => {
    const pool = new RemotePool({ targets: [allHosts()], tls: { ca: pki.read(pki.ca.cert) }, token: TOKEN, logger: silentLogger, startTimeoutMs: 10_000, ...overrides });
    pools.push(pool);
    return pool;
  };

  test("the client balances over the three hosts (round_robin inside one channel)", async () => {
    const pool = newPool();
    await pool.start();
    const test = pool.client(TestServiceDefinition);
    const byPid = new Map<number, number>();
    for (let i = 0; i < 60; i++) {
      const { workerPid } = await test.echo({ text: "hi" }, { timeoutMs: 5000 });
      byPid.set(workerPid, (byPid.get(workerPid) ?? 0) + 1);
    }
    expect([...byPid.keys()].sort()).toEqual(workers.map((w) => w.pid).sort());
    for (const n of byPid.values()) expect(n).toBeGreaterThanOrEqual(5);
    expect(pool.health()).toMatchObject({ state: "running", total: 1, ready: 1 });
    await pool.shutdown();
  });

  test("a host cut off: calls move to the others with no failed idempotent call; back: it gets traffic again", async () => {
    // Relies on: keepalive pings (1 s, 1 s timeout) to notice the silent host, grpc-js round_robin
    // to skip its subchannel once it is not READY, and procgrpc's retry middleware to repeat the
    // few idempotent attempts that were on it when the link went down.
    const pool = newPool({ keepaliveTimeMs: 1000, keepaliveTimeoutMs: 1000, reconnectInitialBackoffMs: 200, reconnectMaxBackoffMs: 1000, retry: { maxAttempts: 5, budget: false } });
    await pool.start();
    const test = pool.client(TestServiceDefinition);
    const victim = net.hosts[1];
    const victimPid = workers[1].pid;
    let phase: "before" | "cut" | "restored" = "before";
    const served = { before: new Map<number, number>(), cut: new Map<number, number>(), restored: new Map<number, number>() };
    const failures: unknown[] = [];
    let stop = false;
    let calls = 0;
    let avoidedVictimInARow = 0;
    const loop = async (): Promise<void> => {
      // Bounded: at most 3000 calls per loop, and the test stops the loops itself.
      for (let i = 0; i < 3000 && !stop; i++) {
        try {
          const at = phase;
          const { workerPid } = await test.echo({ text: "x" }, { timeoutMs: 10_000 });
          calls++;
          const m = served[at];
          m.set(workerPid, (m.get(workerPid) ?? 0) + 1);
          avoidedVictimInARow = workerPid === victimPid ? 0 : avoidedVictimInARow + 1;
        } catch (err) {
          failures.push(err);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    try {
      expect(await eventually(() => (served.before.get(victimPid) ?? 0) > 5, 10_000)).toBe(true);
      net.cut(victim);
      phase = "cut";
      // Once the cut is noticed the victim gets nothing more: wait until 200 calls in a row
      // avoided it (detection done; the deadline only bounds a failure), then count afresh.
      avoidedVictimInARow = 0;
      expect(await eventually(() => avoidedVictimInARow >= 200, 30_000)).toBe(true);
      served.cut.clear();
      const callsAfterDetection = calls;
      expect(await eventually(() => calls > callsAfterDetection + 100, 15_000)).toBe(true);
      expect(served.cut.get(victimPid) ?? 0).toBe(0);
      net.restore(victim);
      phase = "restored";
      expect(await eventually(() => (served.restored.get(victimPid) ?? 0) > 5, 30_000)).toBe(true);
    } finally {
      stop = true;
      net.restore(victim);
      await Promise.all(loops);
    }
    expect(failures).toEqual([]);
    expect(pool.resilience.counters().retries).toBeGreaterThan(0);
    await pool.shutdown();
  });

  test("TLS with a wrong CA fails with a clear error, at start and on a call", async () => {
    const wrong = { targets: [`${net.hosts[0].address}:${PORT}`], tls: { ca: pki.read(pki.otherCa.cert) }, token: TOKEN, startTimeoutMs: 1500 };
    const pool = newPool(wrong);
    const startErr = await pool.start().catch((e: unknown) => e);
    expect(startErr).toBeInstanceOf(RemoteStartError);
    expect((startErr as Error).message).toMatch(/TLS to .* failed: check RemotePool `tls.ca`/);

    const lazy = newPool({ ...wrong, checkOnStart: false });
    await lazy.start();
    const err = await lazy.client(TestServiceDefinition).echo({ text: "x" }, { timeoutMs: 3000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    const rpc = err as RpcError;
    expect(rpc.code()).toBe(Status.UNAVAILABLE);
    expect(rpc.category).toBe("connection");
    expect(rpc.reachedWorker).toBe(false);
    expect(rpc.details()).toMatch(/certificate/i);
    expect(rpc.details()).toContain("check RemotePool `tls.ca`");
  });

  test("a bad or missing token gives UNAUTHENTICATED (category worker); health needs none", async () => {
    for (const token of ["wrong-token", undefined]) {
      const pool = newPool({ token });
      await pool.start(); // health checks are exempt from the token
      const err = await pool.client(TestServiceDefinition).echo({ text: "x" }, { timeoutMs: 3000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect((err as RpcError).code()).toBe(Status.UNAUTHENTICATED);
      expect((err as RpcError).category).toBe("worker");
      expect((err as RpcError).retryable).toBe(false);
      expect((err as RpcError).details()).toMatch(token ? /invalid bearer token/ : /missing bearer token/);
    }
  });

  test("plaintext on a non-loopback address is refused unless opted in, on both sides", async () => {
    const host = net.hosts[2];
    const refused = await expectWorkerExit({ args: ["--listen", `${host.address}:${PORT + 1}`], netns: host.ns });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain(`refusing to serve plaintext gRPC on ${host.address}:${PORT + 1}`);

    const plain = await startRemoteWorker({ args: ["--listen", `${host.address}:${PORT + 1}`, "--allow-plaintext"], netns: host.ns });
    workers.push(plain);
    const target = `${host.address}:${PORT + 1}`;
    expect(() => new RemotePool({ targets: [target], logger: silentLogger })).toThrow(/refusing plaintext gRPC to .*allowPlaintext: true/);
    const pool = newPool({ targets: [target], tls: false, allowPlaintext: true, token: undefined });
    await pool.start();
    expect((await pool.client(TestServiceDefinition).echo({ text: "plain" })).workerPid).toBe(plain.pid);
  });
});
