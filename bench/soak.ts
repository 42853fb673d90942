// npm run soak -- --minutes M [--workers N] [--concurrency C] [--transport unary]
//                  [--no-steady] [--no-chaos] [--no-hostile] [--no-lane]
// (the switches turn parts off, to attribute a growth to one of them)
// Calls at concurrency 64 against a pool of 3 workers while a chaos loop kills a random worker
// every few seconds (kill -9) and now and then stalls one (a handler that ignores cancellation,
// or SIGSTOP for a while). Reports calls, failures by code and category, latency percentiles,
// restarts, Node's file descriptors and memory (bench/soak-memory.ts: raw and live RSS every
// 30 s, per-worker objects at start and end), then checks the
// bar of docs/supervision.md and exits non-zero if it is not met. Beside it, bench/soak-hostile.ts
// runs hostile servicers (subprocesses, a blocked event loop, abandoned streams, shared request
// ids, non-idempotent calls under retry) and reports leaked slots, orphans and duplicate executions.
import { readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { join } from "node:path";
import { RpcError, Status, WorkerPool, silentLogger, statusName } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { hostileSoak } from "./soak-hostile";
import { objectsOver, sampleMemory, slopePerMinute, type MemorySample } from "./soak-memory";
import { repoRoot } from "./lib/paths";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? undefined : Number(process.argv[i + 1]);
  if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new Error(`--${name} needs a positive number`);
  return v ?? fallback;
}

/** `--no-steady`, `--no-chaos`, `--no-hostile`, `--no-lane` switch a part off (to attribute growth). */
const off = (part: string): boolean => process.argv.includes(`--no-${part}`);
function choice<T extends string>(name: string, values: readonly T[], fallback: T): T {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const v = process.argv[i + 1] as T;
  if (!values.includes(v)) throw new Error(`--${name} needs one of ${values.join(", ")}`);
  return v;
}

const minutes = arg("minutes", 1);
const workers = arg("workers", 3);
const concurrency = arg("concurrency", 64);
const transport = choice("transport", ["pipelined", "unary"] as const, "pipelined");
const parts = { steady: !off("steady"), chaos: !off("chaos"), hostile: !off("hostile"), lane: !off("lane") };
const CALL_TIMEOUT_MS = 2000;
/** A call must settle by its deadline plus this (timer and event-loop slack). */
const SETTLE_SLACK_MS = 250;
const root = repoRoot;

const fds = (): number => readdirSync("/proc/self/fd").length;
/**
 * The live memory (resident after a memory-reducing GC, bench/soak-memory.ts) may grow by at most
 * this over the second half of the run: a leak of ~7 bytes per echo call, or of a few hundred kB
 * per restarted worker, would exceed it; V8's pooled heap pages are not counted.
 */
const MAX_LIVE_RSS_SLOPE_MB_PER_MIN = 2;

/** Latencies in 1 ms buckets up to 10 s: constant memory however long the soak runs. */
class Histogram {
  private readonly buckets = new Uint32Array(10_001);
  count = 0;
  max = 0;
  add(ms: number): void {
    this.buckets[Math.min(10_000, Math.floor(ms))] += 1;
    this.count += 1;
    if (ms > this.max) this.max = ms;
  }
  percentile(p: number): number {
    let seen = 0;
    const target = p * this.count;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i];
      if (seen >= target) return i + 1;
    }
    return this.max;
  }
}

interface Victim {
  workerId: string;
  from: number;
  until: number;
}

async function main(): Promise<void> {
  const pool = new WorkerPool({
    workers,
    python: process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python"),
    script: join(root, "test", "workers", "testing_worker.py"),
    logger: silentLogger,
    maxInFlightPerWorker: 32,
    healthCheckIntervalMs: 250,
    healthCheckTimeoutMs: 250,
    unhealthyAfterMisses: 2,
    replaceUnhealthyAfterMs: 2000,
    cancelGraceMs: 500,
    restart: { initialDelayMs: 50, maxDelayMs: 1000, maxRestarts: 1000, windowMs: 60000 },
    transport,
    ...(parts.lane ? {} : { sharedMemoryLane: false as const }),
  });
  await pool.start();
  const client = pool.client(TestServiceDefinition);
  let restarts = 0;
  let hungKills = 0;
  pool.on("workerRestart", () => (restarts += 1));

  // Warm up, then take the baseline.
  await Promise.all(Array.from({ length: 200 }, (_, i) => client.echo({ text: `warm-${i}` })));
  const start = { fds: fds(), at: Date.now() };
  const baseline = sampleMemory(start.at, true);
  // Memory every 30 s: raw RSS, and the live memory under it (the trend tells retention from a leak).
  const memory: MemorySample[] = [];
  // A late call with an equally long event-loop stall was starved (machine load), not held by the pool.
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  let maxLoad = 0;
  const endAt = start.at + minutes * 60_000;

  const victims: Victim[] = [];
  const latencies = new Histogram();
  // The runaway lands wherever the balancer puts it: the worker the watchdog kills is the victim.
  pool.on("workerHung", (e) => {
    hungKills += 1;
    victims.push({ workerId: e.workerId, from: Date.now(), until: Date.now() });
  });
  const failures = new Map<string, number>();
  const unexplained: string[] = [];
  let made = 0;
  let ok = 0;
  let wrongReply = 0;
  let doubleSettle = 0;
  let late = 0;

  const wasVictim = (workerId: string | undefined, at: number): boolean =>
    workerId !== undefined && victims.some((v) => v.workerId === workerId && at >= v.from - 50 && at <= v.until + 2000);

  const caller = async (n: number): Promise<void> => {
    let seq = 0;
    while (Date.now() < endAt) {
      const text = `c${n}-${seq++}`;
      const began = performance.now();
      made += 1;
      let settled = 0;
      await client
        .echo({ text }, { timeoutMs: CALL_TIMEOUT_MS })
        .then(
          (r) => {
            settled += 1;
            if (r.text !== text) wrongReply += 1;
            else ok += 1;
          },
          (e: unknown) => {
            settled += 1;
            const err = RpcError.from(e);
            const key = `${statusName(err.code())}/${err.category}`;
            failures.set(key, (failures.get(key) ?? 0) + 1);
            const expectedKind = err.category === "connection" || err.category === "timeout" || (err.category === "lifecycle" && err.code() === Status.UNAVAILABLE);
            if (!expectedKind || (err.category !== "lifecycle" && !wasVictim(err.workerId, Date.now()))) unexplained.push(`${key} on ${err.workerId}: ${err.details()}`);
          },
        );
      const took = performance.now() - began;
      latencies.add(took);
      if (took > CALL_TIMEOUT_MS + SETTLE_SLACK_MS) late += 1;
      if (settled !== 1) doubleSettle += 1;
    }
  };

  const chaos = async (): Promise<void> => {
    let round = 0;
    while (Date.now() < endAt - 3000) {
      await new Promise((r) => setTimeout(r, 2000 + Math.random() * 2000));
      const ready = pool.health().workers.filter((w) => w.state === "ready" && w.pid);
      if (ready.length < 2) continue;
      const w = ready[Math.floor(Math.random() * ready.length)];
      round += 1;
      if (round % 5 === 0) {
        // Stall: SIGSTOP for 1.5 s (missed health checks, calls time out), then SIGCONT.
        victims.push({ workerId: w.id, from: Date.now(), until: Date.now() + 1500 + CALL_TIMEOUT_MS });
        process.kill(w.pid as number, "SIGSTOP");
        setTimeout(() => {
          try {
            process.kill(w.pid as number, "SIGCONT");
          } catch {
            // Replaced meanwhile.
          }
        }, 1500);
      } else if (round % 7 === 0) {
        // A runaway handler: ignores cancellation; the watchdog kills its worker (see workerHung above).
        void client.sleep({ ms: 60000, ignoreCancel: true }, { timeoutMs: 300 }).catch(() => undefined);
      } else {
        victims.push({ workerId: w.id, from: Date.now(), until: Date.now() });
        try {
          process.kill(w.pid as number, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
  };

  const progress = setInterval(() => {
    maxLoad = Math.max(maxLoad, loadavg()[0]);
    const m = sampleMemory(start.at, false);
    memory.push(m);
    process.stderr.write(`[soak] ${m.at} s: load ${loadavg()[0].toFixed(1)}, loop delay max ${(loopDelay.max / 1e6).toFixed(0)} ms, ${made} calls, ${made - ok} failed, restarts ${restarts}, fds ${fds()}, rss ${m.rss} MB (live ${m.live.rss} MB), heap ${m.heapUsed} MB, external ${m.external} MB, sample took ${m.tookMs} ms\n`);
  }, 30_000);
  const hostileRun = parts.hostile ? hostileSoak(root, process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python"), endAt, { transport, lane: parts.lane }) : undefined;
  const idle = new Promise((r) => setTimeout(r, endAt - Date.now()));
  await Promise.all([parts.chaos ? chaos() : idle, ...(parts.steady ? Array.from({ length: concurrency }, (_, i) => caller(i)) : [idle])]);
  const hostile = (await hostileRun) ?? { leakedSlots: 0, queuedAtEnd: 0, orphanProcesses: 0, duplicateExecutions: 0, fdsStart: 0, fdsEnd: 0 };
  clearInterval(progress);
  // Let the pool settle (last restarts) before the final sample.
  await new Promise((r) => setTimeout(r, 3000));
  await Promise.all(Array.from({ length: 200 }, (_, i) => client.echo({ text: `cool-${i}` }).catch(() => undefined)));
  const end = { fds: fds(), memory: sampleMemory(start.at, true) };
  await pool.shutdown();

  // Live memory over the second half (the first is warm-up and the hostile pool's start).
  const secondHalf = memory.filter((m) => m.at >= minutes * 30);
  const halfTime = secondHalf[0];
  const liveSlope = slopePerMinute(secondHalf, (m) => m.live.rss);
  // Every per-worker object of the hostile pool (shut down) and of the steady pool's dead workers is released.
  const unreleased = objectsOver(end.memory.objects, workers + 1);
  const report = {
    minutes,
    workers,
    concurrency,
    calls: made,
    ok,
    failed: Object.fromEntries([...failures.entries()].sort()),
    p50Ms: latencies.percentile(0.5),
    p99Ms: latencies.percentile(0.99),
    maxMs: Number(latencies.max.toFixed(1)),
    chaos: { kills: victims.length, restarts, hungKills },
    lateCalls: late,
    eventLoopDelayMaxMs: Math.round(loopDelay.max / 1e6),
    maxLoadAverage: Number(maxLoad.toFixed(1)),
    wrongReplies: wrongReply,
    settledOtherThanOnce: doubleSettle,
    unexplainedFailures: unexplained.length,
    node: {
      fdsStart: start.fds,
      fdsEnd: end.fds,
      heapMbStart: baseline.heapUsed,
      heapMbEnd: end.memory.heapUsed,
      externalMbStart: baseline.external,
      externalMbEnd: end.memory.external,
      rssMbStart: baseline.rss,
      rssMbAfterWarmUp: memory[0]?.rss ?? NaN,
      rssMbAtHalfTime: halfTime?.rss ?? NaN,
      rssMbEnd: end.memory.rss,
      liveRssMbStart: baseline.live.rss,
      liveRssMbAfterWarmUp: memory[0]?.live.rss ?? NaN,
      liveRssMbAtHalfTime: halfTime?.live.rss ?? NaN,
      liveRssMbEnd: end.memory.live.rss,
      liveRssSlopeSecondHalfMbPerMin: liveSlope,
      objectsStart: baseline.objects,
      objectsEnd: end.memory.objects,
    },
    hostile,
    memorySamples: memory.map(({ at, rss, heapUsed, heapCommitted, external, live, tookMs }) => ({ at, rss, liveRss: live.rss, heapUsed, heapCommitted, external, tookMs })),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  if (unexplained.length) process.stderr.write(`unexplained failures (first 10):\n${unexplained.slice(0, 10).join("\n")}\n`);
  if (unreleased.length) process.stderr.write(`per-worker objects not released (${workers} workers): ${unreleased.join(", ")}\n`);
  // Leaks show in descriptors, the heap after GC, Buffers after GC, per-worker objects and the
  // live memory's slope; raw RSS is reported with its trend but holds V8's pooled heap pages.
  const grew = end.fds > start.fds + 5 || end.memory.heapUsed > baseline.heapUsed * 1.5 + 10 || end.memory.external > baseline.external * 1.5 + 10 || unreleased.length > 0 || liveSlope > MAX_LIVE_RSS_SLOPE_MB_PER_MIN;
  const hostileOk = hostile.leakedSlots === 0 && hostile.queuedAtEnd === 0 && hostile.orphanProcesses === 0 && hostile.duplicateExecutions === 0 && hostile.fdsEnd <= hostile.fdsStart + 5;
  const pass = late === 0 && wrongReply === 0 && doubleSettle === 0 && unexplained.length === 0 && !grew && hostileOk;
  process.stdout.write(pass ? "PASS\n" : "FAIL\n");
  process.exit(pass ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
