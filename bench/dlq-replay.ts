// Dead-letter replay cost against store size: is replay linear? Writes its own section of
// docs/benchmarks.md (between the dlq-replay markers) and bench/results/dlq-replay.json.
//   npx tsx bench/dlq-replay.ts [--quick] [--out docs/benchmarks.md] [--json bench/results/latest.json]
// Imported by bench/run.ts (`import "./dlq-replay"`), it runs after the main benchmark has written
// its report (on `beforeExit`, so it never shares the CPU with those measurements), with the same
// --quick/--out/--json/--render flags; a failed main run exits first and skips it.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DirectoryDeadLetterStore, JsonlDeadLetterStore, WorkerPool, replayDeadLetters, silentLogger, type DeadLetter, type DeadLetterStore, type UnaryRunner } from "../src";
import { EchoRequest } from "../src/gen/bench/v1/bench";
import { scheduleSection, sectionMarkers } from "./lib/doc-section";
import { benchDir, repoRoot } from "./lib/paths";

const root = repoRoot;
const MARKERS = sectionMarkers("dlq-replay");

/** One measured replay. */
export interface ReplayRow {
  store: string;
  runner: string;
  letters: number;
  writeMs: number;
  replayMs: number;
  replayUsPerLetter: number;
}

export interface DlqBenchResult {
  date: string;
  /** /proc/loadavg at the start (other work on the machine slows every figure). */
  load: string;
  quick: boolean;
  rows: ReplayRow[];
}

const log = (msg: string): void => void process.stderr.write(`[bench dlq] ${msg}\n`);

function lettersFor(n: number, request: string): DeadLetter[] {
  const at = new Date().toISOString();
  return Array.from({ length: n }, (_, i) => ({
    id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`,
    method: "/bench.v1.BenchService/Echo",
    request,
    requestJson: { i },
    code: 14,
    codeName: "UNAVAILABLE",
    details: "the scorer was down",
    category: "worker",
    attempts: 3,
    firstFailureAt: at,
    lastFailureAt: at,
    replays: 0,
  }));
}

async function measure(kind: "directory" | "JSON-lines", runnerName: string, runner: UnaryRunner, n: number): Promise<ReplayRow> {
  const dir = mkdtempSync(join(tmpdir(), "pgdlq-bench-"));
  try {
    const store: DeadLetterStore & { addAll(l: readonly DeadLetter[]): Promise<void> } =
      kind === "directory" ? new DirectoryDeadLetterStore(join(dir, "dlq")) : new JsonlDeadLetterStore(join(dir, "dlq.jsonl"));
    const request = Buffer.from(EchoRequest.encode({ payload: Buffer.alloc(64, 7) }).finish()).toString("base64");
    let t = process.hrtime.bigint();
    await store.addAll(lettersFor(n, request));
    const writeMs = Number(process.hrtime.bigint() - t) / 1e6;
    t = process.hrtime.bigint();
    const result = await replayDeadLetters(store, runner, { concurrency: 4 });
    const replayMs = Number(process.hrtime.bigint() - t) / 1e6;
    if (result.succeeded.length !== n || result.failed.length > 0) throw new Error(`${kind} replay of ${n}: ${result.succeeded.length} succeeded, ${result.failed.length} failed`);
    if ((await store.list()).length !== 0) throw new Error(`${kind} replay of ${n} left letters behind`);
    const row = { store: kind, runner: runnerName, letters: n, writeMs, replayMs, replayUsPerLetter: (replayMs * 1000) / n };
    log(`${kind} / ${runnerName} / ${n}: write ${writeMs.toFixed(0)} ms, replay ${replayMs.toFixed(0)} ms (${row.replayUsPerLetter.toFixed(0)} µs per letter)`);
    return row;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Replays of growing stores: the store's own cost (an instant runner), then through real workers. */
export async function runDlqBench(quick: boolean): Promise<DlqBenchResult> {
  const load = existsSync("/proc/loadavg") ? readFileSync("/proc/loadavg", "utf8").trim() : "?";
  const instant: UnaryRunner = { unary: async () => undefined as never };
  const rows: ReplayRow[] = [];
  for (const n of quick ? [100, 1000] : [1000, 10_000, 100_000]) rows.push(await measure("directory", "store only", instant, n));
  for (const n of quick ? [100] : [1000, 10_000]) rows.push(await measure("JSON-lines", "store only", instant, n));
  const python = process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python");
  const pool = new WorkerPool({ workers: 2, python, script: join(benchDir, "bench_worker.py"), logger: silentLogger });
  await pool.start();
  try {
    rows.push(await measure("directory", "2 real workers", pool, quick ? 200 : 10_000));
  } finally {
    await pool.shutdown();
  }
  return { date: new Date().toISOString(), load, quick, rows };
}

/** The markdown section (between the markers). */
export function renderDlqSection(result: DlqBenchResult): string {
  const lines = [
    MARKERS.start,
    "## Dead-letter replay",
    "",
    `Measured ${result.date}${result.quick ? " (--quick: tiny sizes, not figures to quote)" : ""} (load average ${result.load}) by \`bench/dlq-replay.ts\`: letters with a 64-byte`,
    "request written with `addAll`, then `replayDeadLetters(store, runner, { concurrency: 4 })`. \"store only\"",
    "answers every call at once, so the time is the store's: claim (a rename), read, and the durable",
    "removal (unlink + a directory fsync shared by the removals in flight). Every write and removal is",
    "fsynced, on this machine's disk.",
    "",
    "| store | runner | letters | write | replay | replay per letter |",
    "|---|---|---:|---:|---:|---:|",
    ...result.rows.map((r) => `| ${r.store} | ${r.runner} | ${r.letters.toLocaleString("en-US")} | ${(r.writeMs / 1000).toFixed(2)} s | ${(r.replayMs / 1000).toFixed(2)} s | ${r.replayUsPerLetter.toFixed(0)} µs |`),
    "",
    "Linear means the last column stays flat as the store grows: it does, within the noise of a shared",
    "machine (the load average above; other people's tests ran beside it, so every figure is pessimistic",
    "and the per-letter column moves with the load, not with the store's size). Before this store",
    "(commit cb670da, the JSON-lines log re-read at every removal), the same store-only replay took",
    "1.5 s for 200 letters, 10.8 s for 800, 29.4 s for 2,000 and 198 s for 5,000 (7.7, 13.5, 14.7 and",
    "39.7 ms per letter, measured once on this machine at a similar load; quadratic, so about 22 hours",
    "for 100,000). The JSON-lines rows are the deprecated store as it is now: linear too, slower per",
    "letter (each removal is an fsynced append). Through real workers the calls dominate; the store's",
    "own share is the store-only row.",
    MARKERS.end,
  ];
  return lines.join("\n");
}



scheduleSection<DlqBenchResult>({ name: "dlq-replay", title: "dead-letter replay", root, measure: runDlqBench, render: renderDlqSection, log }, require.main === module);
