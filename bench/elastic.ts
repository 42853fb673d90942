// The elastic pool: kill -9 → next call served, with and without a warm spare; time to scale from
// min to max under a step load; a cold start from zero. Writes its own section of
// docs/benchmarks.md (between the elastic markers) and bench/results/elastic.json.
//   npx tsx bench/elastic.ts [--quick] [--out docs/benchmarks.md] [--json bench/results/latest.json]
// Imported by bench/run.ts (`import "./elastic"`), it runs after the main benchmark has written its
// report (on `beforeExit`, so it never shares the CPU with those measurements).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { WorkerPool, silentLogger, type WorkerPoolOptions } from "../src";
import { BenchServiceDefinition } from "../src/gen/bench/v1/bench";
import { scheduleSection, sectionMarkers } from "./lib/doc-section";
import { median } from "./lib/measure";
import { benchDir, repoRoot } from "./lib/paths";

const root = repoRoot;
const MARKERS = sectionMarkers("elastic");
const python = process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python");

/** One measured scenario: the median and the range of its rounds, ms. */
export interface ElasticRow {
  scenario: string;
  rounds: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Calls that failed during the measurement (a call on the killed worker, before the pool saw its exit). */
  failedCalls: number;
}

export interface ElasticBenchResult {
  date: string;
  load: string;
  quick: boolean;
  rows: ElasticRow[];
}

const log = (msg: string): void => void process.stderr.write(`[bench elastic] ${msg}\n`);
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const options = (extra: Partial<WorkerPoolOptions>): WorkerPoolOptions => ({ python, script: join(benchDir, "bench_worker.py"), logger: silentLogger, ...extra });
const payload = Buffer.alloc(16, 1);

async function until(check: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function row(scenario: string, samples: number[], failedCalls: number): ElasticRow {
  const r = { scenario, rounds: samples.length, medianMs: median(samples), minMs: Math.min(...samples), maxMs: Math.max(...samples), failedCalls };
  log(`${scenario}: median ${r.medianMs.toFixed(1)} ms (${r.minMs.toFixed(1)}–${r.maxMs.toFixed(1)}) over ${r.rounds}, ${failedCalls} failed calls`);
  return r;
}

/** kill -9 of the one active worker, then calls in a loop until one succeeds: kill → first success. */
async function killToNextCall(spares: number, rounds: number): Promise<ElasticRow> {
  const pool = new WorkerPool(options({ workers: 1, spares }));
  await pool.start();
  const client = pool.client(BenchServiceDefinition);
  const samples: number[] = [];
  let failed = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      await until(() => pool.health().ready === 1 && pool.health().spares.every((s) => s.state === "ready"), "the pool to be whole again");
      await client.echo({ payload });
      const victim = pool.health().workers[0].pid as number;
      const t0 = now();
      process.kill(victim, "SIGKILL");
      for (;;) {
        const ok = await client.echo({ payload }, { timeoutMs: 60_000 }).then(
          () => true,
          () => false,
        );
        if (ok) break;
        failed += 1;
      }
      samples.push(now() - t0);
    }
  } finally {
    await pool.shutdown();
  }
  return row(spares === 0 ? "kill -9 → next call served, no spare (restart)" : `kill -9 → next call served, ${spares} warm spare`, samples, failed);
}

/** 64 callers on a pool of `{ min, max }` that takes 4 calls per worker: load start → max workers SERVING. */
async function scaleMinToMax(min: number, max: number, spawnRate: number, rounds: number): Promise<ElasticRow> {
  const samples: number[] = [];
  let failed = 0;
  for (let i = 0; i < rounds; i++) {
    const pool = new WorkerPool(options({ workers: { min, max, spawnRate, intervalMs: 50, idleTimeoutMs: 600_000 }, maxInFlightPerWorker: 4, maxQueue: 10_000 }));
    await pool.start();
    const client = pool.client(BenchServiceDefinition);
    let stop = false;
    const t0 = now();
    const callers = Array.from({ length: 64 }, async () => {
      while (!stop) await client.echo({ payload }, { timeoutMs: 60_000 }).catch(() => (failed += 1));
    });
    try {
      await until(() => pool.health().ready === max, `${max} workers SERVING`);
      samples.push(now() - t0);
    } finally {
      stop = true;
      await Promise.all(callers);
      await pool.shutdown();
    }
  }
  return row(`scale ${min} → ${max} workers under 64 callers, spawnRate ${spawnRate}`, samples, failed);
}

/** `min: 0`: the first call's latency, a cold start included. */
async function coldFirstCall(rounds: number): Promise<ElasticRow> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const pool = new WorkerPool(options({ workers: { min: 0, max: 1 } }));
    await pool.start();
    try {
      const t0 = now();
      await pool.client(BenchServiceDefinition).echo({ payload }, { timeoutMs: 60_000 });
      samples.push(now() - t0);
    } finally {
      await pool.shutdown();
    }
  }
  return row("first call on a pool scaled to zero (cold start)", samples, 0);
}

export async function runElasticBench(quick: boolean): Promise<ElasticBenchResult> {
  const load = existsSync("/proc/loadavg") ? readFileSync("/proc/loadavg", "utf8").trim() : "?";
  const rounds = quick ? 1 : 7;
  const rows: ElasticRow[] = [];
  rows.push(await killToNextCall(0, rounds));
  rows.push(await killToNextCall(1, rounds));
  rows.push(await scaleMinToMax(1, 4, 1, quick ? 1 : 3));
  rows.push(await scaleMinToMax(1, 4, 4, quick ? 1 : 3));
  rows.push(await coldFirstCall(quick ? 1 : 3));
  return { date: new Date().toISOString(), load, quick, rows };
}

export function renderElasticSection(result: ElasticBenchResult): string {
  const ms = (v: number): string => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  return [
    MARKERS.start,
    "## Elastic pool: spares, scaling, cold starts",
    "",
    `Measured ${result.date}${result.quick ? " (--quick: one round each, not figures to quote)" : ""} (load average ${result.load}) by \`bench/elastic.ts\`,`,
    "with the bench worker (an instant Echo). Kill rows: kill -9 of the only worker in rotation, then",
    "calls in a loop until one succeeds (a call can land on the dead worker before the pool reads its",
    "exit: \"failed calls\" counts those). Scale rows: 64 callers start on a pool at `min` that takes 4",
    "calls per worker; the time is until `max` workers are SERVING. See docs/scaling.md.",
    "",
    "| scenario | rounds | median | min | max | failed calls |",
    "|---|---:|---:|---:|---:|---:|",
    ...result.rows.map((r) => `| ${r.scenario} | ${r.rounds} | ${ms(r.medianMs)} ms | ${ms(r.minMs)} ms | ${ms(r.maxMs)} ms | ${r.failedCalls} |`),
    "",
    "A spare turns the kill → next-call time from a process start (Python, grpc and the servicer's",
    "imports, then the first health check) into the time the pool takes to read the exit. A scale-up",
    "pays one cold start per worker; `spawnRate` sets how many start at once.",
    MARKERS.end,
  ].join("\n");
}

scheduleSection<ElasticBenchResult>({ name: "elastic", title: "elastic pool", root, measure: runElasticBench, render: renderElasticSection, log }, require.main === module);
