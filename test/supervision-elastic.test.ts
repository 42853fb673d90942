/**
 * The elastic pool with real workers: autoscaling between min and max (step load, scale to zero),
 * per-slot env/args/CPU affinity across a kill -9 restart, warm spares taking over after kill -9,
 * kill switches and isolated circuits. Waits on events and conditions; no timing assertions.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isCircuitOpen, isSwitchedOff, observePoolMetrics, RpcError, startPrometheusEndpoint, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, isAlive, rejection, testingPool, WORKERS } from "./helpers/env";
import { scrape, valueOf } from "./helpers/scrape";
import { nextEvent, recordEvents, type Recorded } from "./helpers/supervision";

const ELASTIC_WORKER = join(WORKERS, "elastic_worker.py");
/** The CPUs this process may run on (a container's cpuset may not start at 0). */
function allowedCpus(): number[] {
  const list = /^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0";
  return list.split(",").flatMap((part) => {
    const [lo, hi = lo] = part.split("-").map(Number);
    return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  });
}

const payloads = (events: Recorded[], name: Recorded["name"]): Record<string, unknown>[] => events.filter((e) => e.name === name).map((e) => e.payload);

/** Callers that loop on a Sleep (20 ms unless told) until stopped, counting successes and keeping every failure. */
function load(pool: WorkerPool, sleepMs = 20) {
  const client = pool.client(TestServiceDefinition);
  const failures: unknown[] = [];
  let ok = 0;
  const loops: { stop: boolean; done: Promise<void> }[] = [];
  return {
    failures,
    ok: () => ok,
    /** Runs `n` callers in all (adds or stops callers). */
    async setConcurrency(n: number): Promise<void> {
      while (loops.length < n) {
        const loop = { stop: false, done: Promise.resolve() };
        loop.done = (async () => {
          while (!loop.stop) {
            await client.sleep({ ms: sleepMs }, { timeoutMs: 60_000 }).then(
              () => (ok += 1),
              (e: unknown) => failures.push(e),
            );
          }
        })();
        loops.push(loop);
      }
      const stopped = loops.splice(n);
      for (const l of stopped) l.stop = true;
      await Promise.all(stopped.map((l) => l.done));
    },
  };
}

/** After a scale-down to one worker: calls still flow, none failed, every drained worker exited on its own. */
async function expectServedByOneWorkerWithNoFailure(pool: WorkerPool, calls: ReturnType<typeof load>, events: ReturnType<typeof recordEvents>, moreCalls: number): Promise<void> {
  const ok = calls.ok();
  expect(await eventually(() => calls.ok() >= ok + moreCalls, 30_000)).toBe(true);
  await calls.setConcurrency(0);
  expect(calls.failures).toEqual([]);
  expect(payloads(events, "workerExit").every((e) => e.expected === true)).toBe(true);
  expect(pool.health()).toMatchObject({ total: 1, ready: 1, queued: 0 });
}

test("a step load 1 → 64 → 1 grows the pool to max because calls queue, and drains it back to min with no failed call", async () => {
  const pool = new WorkerPool(testingPool({ workers: { min: 1, max: 4, spawnRate: 2, idleTimeoutMs: 1500, intervalMs: 50 }, maxInFlightPerWorker: 4 }));
  await pool.start();
  const events = recordEvents(pool);
  const calls = load(pool);
  try {
    expect(pool.health().scaling).toMatchObject({ mode: "auto", min: 1, max: 4, spares: 0 });
    // One caller never queues on a worker that takes 4 calls: no scaling.
    await calls.setConcurrency(1);
    expect(await eventually(() => calls.ok() >= 20, 30_000)).toBe(true);
    expect(payloads(events, "scale")).toEqual([]);

    await calls.setConcurrency(64);
    expect(await eventually(() => pool.health().total === 4 && pool.health().ready === 4, 60_000, 50)).toBe(true);
    const ups = payloads(events, "scale").filter((e) => e.direction === "up");
    expect(ups.length).toBeGreaterThan(0);
    // Calls were waiting for a free worker: that is what every scale-up saw.
    for (const up of ups) {
      expect(up.reason).toBe("queue-length");
      expect(up.queued as number).toBeGreaterThan(0);
      expect((up.workerIds as string[]).length).toBeLessThanOrEqual(2);
    }
    expect(ups[ups.length - 1].to).toBe(4);
    const metricsAtMax = pool.health().scaling;
    expect(metricsAtMax.lastScale).toMatchObject({ direction: "up", to: 4 });

    await calls.setConcurrency(1);
    expect(await eventually(() => pool.health().total === 1 && payloads(events, "workerDrained").length === 3, 60_000, 50)).toBe(true);
    const downs = payloads(events, "scale").filter((e) => e.direction === "down");
    expect(downs.every((d) => d.reason === "idle")).toBe(true);
    expect(downs[downs.length - 1].to).toBe(1);
    // Every worker drained out exited on its own (expected), and none crashed.
    const drained = new Set(payloads(events, "workerDrained").map((e) => e.workerId));
    expect(drained.size).toBe(3);
    await expectServedByOneWorkerWithNoFailure(pool, calls, events, 10);
  } finally {
    await calls.setConcurrency(0);
    await pool.shutdown();
  }
});

test("targetInFlightPerWorker alone grows the pool while no call queues, and it drains back to min with no failed call", async () => {
  // A worker takes 8 calls, so 6 callers never queue: only the in-flight target can scale.
  const pool = new WorkerPool(testingPool({ workers: { min: 1, max: 3, targetInFlightPerWorker: 2, idleTimeoutMs: 1500, intervalMs: 50 }, maxInFlightPerWorker: 8 }));
  await pool.start();
  const events = recordEvents(pool);
  const calls = load(pool);
  try {
    await calls.setConcurrency(6);
    expect(await eventually(() => pool.health().total === 3 && pool.health().ready === 3, 60_000, 50)).toBe(true);
    const ups = payloads(events, "scale").filter((e) => e.direction === "up");
    expect(ups.length).toBeGreaterThan(0);
    for (const up of ups) {
      expect(up).toMatchObject({ reason: "in-flight", queued: 0 });
      // More calls per worker than the target: what the trigger is.
      expect(up.inFlight as number).toBeGreaterThan(2 * (up.from as number));
      expect(up.to as number).toBeLessThanOrEqual(3);
    }
    expect(ups[ups.length - 1].to).toBe(3);

    await calls.setConcurrency(1);
    expect(await eventually(() => pool.health().total === 1 && payloads(events, "workerDrained").length === 2, 60_000, 50)).toBe(true);
    const downs = payloads(events, "scale").filter((e) => e.direction === "down");
    expect(downs.length).toBeGreaterThan(0);
    expect(downs.every((d) => d.reason === "idle")).toBe(true);
    expect(downs[downs.length - 1].to).toBe(1);
    await expectServedByOneWorkerWithNoFailure(pool, calls, events, 10);
  } finally {
    await calls.setConcurrency(0);
    await pool.shutdown();
  }
});

test("targetQueueWaitMs alone grows the pool when a call has waited longer than the target, and it drains back to min with no failed call", async () => {
  // One call per worker, each Sleep holding its worker for 300 ms: a second caller waits at least
  // that long in the queue, over the 100 ms target whatever the machine's load. No other trigger.
  const pool = new WorkerPool(testingPool({ workers: { min: 1, max: 2, targetQueueWaitMs: 100, idleTimeoutMs: 1500, intervalMs: 50 }, maxInFlightPerWorker: 1 }));
  await pool.start();
  const events = recordEvents(pool);
  const calls = load(pool, 300);
  try {
    await calls.setConcurrency(2);
    expect(await eventually(() => pool.health().total === 2 && pool.health().ready === 2, 60_000, 50)).toBe(true);
    const ups = payloads(events, "scale").filter((e) => e.direction === "up");
    expect(ups).toHaveLength(1);
    expect(ups[0]).toMatchObject({ reason: "queue-wait", from: 1, to: 2 });
    expect(ups[0].queued as number).toBeGreaterThan(0);
    expect(ups[0].oldestQueuedMs as number).toBeGreaterThanOrEqual(100); // over the target; the event rounds to whole ms

    await calls.setConcurrency(1);
    expect(await eventually(() => pool.health().total === 1 && payloads(events, "workerDrained").length === 1, 60_000, 50)).toBe(true);
    const downs = payloads(events, "scale").filter((e) => e.direction === "down");
    expect(downs).toHaveLength(1);
    expect(downs[0]).toMatchObject({ reason: "idle", from: 2, to: 1 });
    await expectServedByOneWorkerWithNoFailure(pool, calls, events, 3);
  } finally {
    await calls.setConcurrency(0);
    await pool.shutdown();
  }
});

test("min: 0 starts no worker, the first call starts one, idle scales back to zero, and the next call starts one again", async () => {
  const pool = new WorkerPool(testingPool({ workers: { min: 0, max: 2, idleTimeoutMs: 300, intervalMs: 50 } }));
  const endpoint = await startPrometheusEndpoint({ port: 0 });
  const metrics = observePoolMetrics(pool, { meterProvider: endpoint.meterProvider });
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    expect(pool.health()).toMatchObject({ total: 0, ready: 0 });
    for (let round = 0; round < 2; round++) {
      const reply = await client.echo({ text: `cold ${round}` }, { timeoutMs: 60_000 });
      expect(reply.text).toBe(`cold ${round}`);
      const up = payloads(events, "scale").filter((e) => e.direction === "up");
      expect(up[round]).toMatchObject({ reason: "first-call", from: 0, to: 1 });
      const down = nextEvent(pool, "workerDrained", () => true, 60_000);
      const drained = await down;
      expect(drained.remaining).toBe(0);
      expect(pool.health().total).toBe(0);
      expect(isAlive(drained.pid)).toBe(false);
    }
    expect(payloads(events, "scale").filter((e) => e.direction === "down").map((e) => e.to)).toEqual([0, 0]);
    const s = await scrape(endpoint.url);
    expect(valueOf(s, "procgrpc_pool_scale_decisions_total", { procgrpc_scale_direction: "up", procgrpc_scale_reason: "first-call" })).toBe(2);
    expect(valueOf(s, "procgrpc_pool_scale_decisions_total", { procgrpc_scale_direction: "down", procgrpc_scale_reason: "idle" })).toBe(2);
    expect(valueOf(s, "procgrpc_pool_scale_workers_total", { procgrpc_scale_direction: "down" })).toBe(2);
  } finally {
    metrics.stop();
    await endpoint.close();
    await pool.shutdown();
  }
});

test("per-slot env, args and CPU affinity are given to each worker and stay with its slot across a kill -9 restart", async () => {
  const cpus = allowedCpus();
  const pool = new WorkerPool(
    testingPool({
      workers: 2,
      script: ELASTIC_WORKER,
      env: (slot) => ({ SLOT_TAG: `slot-${slot.index}`, SLOT_ID: slot.id }),
      args: (slot) => [`--slot-arg=${slot.index}`],
      cpuAffinity: (slot) => [cpus[slot.index % cpus.length]],
    }),
  );
  await pool.start();
  const client = pool.client(TestServiceDefinition);
  type Facts = { pid: number; env: Record<string, string | null>; argv: string[]; affinity: number[] | null };
  // Sequential calls spread over the workers (ties rotate): ask until every current pid has answered.
  const factsByPid = async (): Promise<Map<number, Facts>> => {
    const want = new Set(pool.health().workers.map((w) => w.pid as number));
    const seen = new Map<number, Facts>();
    for (let i = 0; i < 200 && [...want].some((p) => !seen.has(p)); i++) {
      const facts = JSON.parse((await client.echo({ text: "facts:SLOT_TAG,SLOT_ID" })).text) as Facts;
      seen.set(facts.pid, facts);
    }
    return seen;
  };
  try {
    const check = async (): Promise<void> => {
      const seen = await factsByPid();
      for (const w of pool.health().workers) {
        const facts = seen.get(w.pid as number);
        expect(facts).toBeDefined();
        expect(facts?.env).toEqual({ SLOT_TAG: `slot-${w.index}`, SLOT_ID: w.id });
        expect(facts?.argv).toContain(`--slot-arg=${w.index}`);
        expect(facts?.affinity).toEqual([cpus[w.index % cpus.length]]);
      }
    };
    await check();
    const victim = pool.health().workers.find((w) => w.id === "w1");
    const back = nextEvent(pool, "workerReady", (e) => e.workerId === "w1", 60_000);
    process.kill(victim?.pid as number, "SIGKILL");
    const ready = await back;
    expect(ready.pid).not.toBe(victim?.pid);
    await check();
    expect(pool.health().workers.find((w) => w.id === "w1")?.restarts).toBe(1);
  } finally {
    await pool.shutdown();
  }
});

test("a per-slot option function that throws or gives the wrong shape fails start() clearly and leaves nothing running", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2, env: (slot) => (slot.index === 1 ? ({ N: 1 } as unknown as Record<string, string>) : {}) }));
  await expect(pool.start()).rejects.toThrow(/env\(\{"index":1,"id":"w1"\}\) must give an object of strings/);
  expect(pool.health().state).toBe("stopped");
  expect(() => new WorkerPool(testingPool({ cpuAffinity: [-1] }))).toThrow(/cpuAffinity must give a non-empty array of CPU numbers/);
});

test("a warm spare takes over at once after kill -9: the next call is served by the spare's process, and the dead slot restarts as the spare", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, spares: 1 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const health = pool.health();
    expect(health.workers.map((w) => w.id)).toEqual(["w0"]);
    expect(health.spares).toMatchObject([{ id: "w1", state: "ready" }]);
    const spare = health.spares[0];
    // Out of rotation: a spare serves nothing.
    for (let i = 0; i < 5; i++) expect((await client.echo({ text: "x" })).workerPid).toBe(health.workers[0].pid);
    const promoted = nextEvent(pool, "sparePromoted", () => true, 30_000);
    process.kill(health.workers[0].pid as number, "SIGKILL");
    expect(await promoted).toEqual({ workerId: "w1", pid: spare.pid, replaced: "w0", reason: "worker-exit" });
    // The spare was SERVING before the kill; the call does not queue for a start.
    const reply = await client.echo({ text: "after the kill" });
    expect(reply.workerPid).toBe(spare.pid);
    expect(payloads(events, "callDequeued")).toEqual([]);
    // w0 restarts in the background, as the new spare.
    await nextEvent(pool, "workerReady", (e) => e.workerId === "w0", 60_000);
    const after = pool.health();
    expect(after.workers.map((w) => w.id)).toEqual(["w1"]);
    expect(after.spares).toMatchObject([{ id: "w0", state: "ready" }]);
    expect(payloads(events, "workerReady").find((e) => e.workerId === "w0")?.role).toBe("spare");
    // And it takes over the same way again.
    const again = nextEvent(pool, "sparePromoted", () => true, 30_000);
    process.kill(after.workers[0].pid as number, "SIGKILL");
    expect(await again).toMatchObject({ workerId: "w0", replaced: "w1" });
    expect((await client.echo({ text: "x" })).workerPid).toBe(after.spares[0].pid);
  } finally {
    await pool.shutdown();
  }
});

test("a scale-up takes a ready spare first and starts a new spare behind it", async () => {
  const pool = new WorkerPool(testingPool({ workers: { min: 1, max: 2, intervalMs: 50, idleTimeoutMs: 60_000 }, spares: 1, maxInFlightPerWorker: 1 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const spare = pool.health().spares[0];
    const promoted = nextEvent(pool, "sparePromoted", () => true, 30_000);
    const held = [client.sleep({ ms: 1500 }), client.sleep({ ms: 1500 })];
    expect(await promoted).toMatchObject({ workerId: spare.id, pid: spare.pid, reason: "scale-up" });
    await Promise.all(held);
    expect(payloads(events, "scale")[0]).toMatchObject({ direction: "up", from: 1, to: 2, workerIds: [spare.id] });
    expect(await eventually(() => pool.health().spares.length === 1 && pool.health().spares[0].state === "ready", 60_000)).toBe(true);
    expect(pool.health().total).toBe(2);
  } finally {
    await pool.shutdown();
  }
});

test("a switched-off method or service never reaches Python, fails fast with UNAVAILABLE (or its fallback), and comes back", async () => {
  const fallbackUsed: string[] = [];
  const pool = new WorkerPool(
    testingPool({
      workers: 1,
      fallbacks: { "/testing.v1.TestService/Sleep": (err) => (fallbackUsed.push(err.message), { completed: false, workerPid: -1 }) },
    }),
  );
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  try {
    const callsSoFar = async (): Promise<number> => (await client.stats({})).calls;
    const before = await callsSoFar();
    pool.switchOff("/testing.v1.TestService/Echo");
    pool.switchOff("testing.v1.TestService/Echo"); // the same target: idempotent
    expect(pool.health().switchedOff).toEqual(["/testing.v1.TestService/Echo"]);
    for (let i = 0; i < 3; i++) {
      const err = await rejection(client.echo({ text: "off" }));
      expect(err.code()).toBe(Status.UNAVAILABLE);
      expect(err.reachedWorker).toBe(false);
      expect(isSwitchedOff(err)).toBe(true);
    }
    // Only the Stats calls reached the servicer.
    expect(await callsSoFar()).toBe(before + 1);
    expect(payloads(events, "switched")).toEqual([{ target: "/testing.v1.TestService/Echo", scope: "method", on: false }]);
    expect(payloads(events, "switchedOffCall")).toHaveLength(3);

    // A whole service; a method with a fallback is answered by it.
    pool.switchOff("testing.v1.TestService");
    expect(isSwitchedOff(await rejection(client.stats({})))).toBe(true);
    expect(await client.sleep({ ms: 1 })).toMatchObject({ completed: false, workerPid: -1 });
    expect(fallbackUsed).toHaveLength(1);
    // On again once the workers take calls to it again (they refuse direct callers while off).
    await pool.switchOn("testing.v1.TestService");
    await pool.switchOn("/testing.v1.TestService/Echo");
    expect(pool.health().switchedOff).toEqual([]);
    expect((await client.echo({ text: "on" })).text).toBe("on");
    expect(await callsSoFar()).toBe(before + 3);
    expect(() => pool.switchOff("not a method")).toThrow(TypeError);
  } finally {
    await pool.shutdown();
  }
});

test("an isolated method circuit fails fast without reaching a worker until closed; an isolated worker gets no calls", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2, circuitBreaker: { methods: true, workers: true } }));
  await pool.start();
  const client = pool.client(TestServiceDefinition);
  try {
    const before = (await client.stats({})).calls + 0;
    pool.isolateCircuit({ method: "/testing.v1.TestService/Echo" });
    expect(pool.health().circuits.methods["/testing.v1.TestService/Echo"]).toBe("isolated");
    const err = await rejection(client.echo({ text: "x" }));
    expect(err).toBeInstanceOf(RpcError);
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(isCircuitOpen(err)).toBe(true);
    expect(err.reachedWorker).toBe(false);
    pool.closeCircuit({ method: "/testing.v1.TestService/Echo" });
    expect((await client.echo({ text: "back" })).text).toBe("back");
    expect(before).toBeGreaterThan(0);

    const [w0, w1] = pool.health().workers;
    pool.isolateCircuit({ worker: "w0" });
    for (let i = 0; i < 6; i++) expect((await client.echo({ text: "x" })).workerPid).toBe(w1.pid);
    pool.closeCircuit({ worker: "w0" });
    const pids = new Set<number>();
    for (let i = 0; i < 20 && pids.size < 2; i++) pids.add((await client.echo({ text: "x" })).workerPid);
    expect(pids).toEqual(new Set([w0.pid, w1.pid]));
    expect(() => pool.isolateCircuit({ worker: "w9" })).toThrow(/no worker "w9"/);
  } finally {
    await pool.shutdown();
  }
});

test("a per-slot function that throws for a slot added by a scale-up stops that scale-up only: scaleFailed, and the calls are served by the workers there are", async () => {
  const pool = new WorkerPool(
    testingPool({
      workers: { min: 1, max: 3, intervalMs: 50, idleTimeoutMs: 60_000 },
      maxInFlightPerWorker: 1,
      env: (slot) => {
        if (slot.index > 0) throw new Error(`no GPU left for slot ${slot.index}`);
        return {};
      },
    }),
  );
  await pool.start();
  try {
    const failed = nextEvent(pool, "scaleFailed", () => true, 30_000);
    const calls = Promise.all([1, 2, 3].map(() => pool.client(TestServiceDefinition).sleep({ ms: 300 }, { timeoutMs: 30_000 })));
    expect(await failed).toEqual({ workerId: "w1", error: "no GPU left for slot 1" });
    expect((await calls).every((r) => r.completed)).toBe(true);
    expect(pool.health().total).toBe(1);
  } finally {
    await pool.shutdown();
  }
});
