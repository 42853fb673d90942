// Small calls (16 B echo), interleaved, for the issue 15 §2 targets: the pipelined transport
// against the bare gRPC stream (1 message per call) and the pyproc-style JSON peer, path after
// path in every round (the order rotates), so a loaded machine hurts all paths alike. Reports
// each path's median and range over the rounds, and the two target ratios taken round by round.
//   node scripts/node.mjs --import tsx bench/small-calls.ts [--rounds 5] [--seconds 2]
//        [--baseline DIR]   also measure the pipelined transport of another checkout (its src/ and
//                           python-worker/, e.g. an unpacked `git archive` of main) beside this one
//        [--python PATH]    the workers' Python (default .venv/bin/python)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { WorkerPool, silentLogger } from "../src";
import { BenchServiceDefinition } from "../src/gen/bench/v1/bench";
import { bareStreamCall, startBareStreamServer } from "./lib/bare-stream";
import { median, sequential, throughput, type Call, type RunFigures } from "./lib/measure";
import { jsonPeerCall, startPeerServer } from "./lib/peer-clients";
import { benchDir, repoRoot } from "./lib/paths";

const root = repoRoot;
const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "2" },
    samples: { type: "string", default: "4000" },
    baseline: { type: "string" },
    python: { type: "string", default: process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python") },
  },
});
const rounds = Number(args.rounds);
const seconds = Number(args.seconds);
const samples = Number(args.samples);
const python = args.python as string;
const log = (msg: string): void => void process.stderr.write(`[small-calls] ${msg}\n`);

interface Target {
  name: string;
  call: Call;
  pids: number[];
  stop: () => Promise<void>;
}

interface PoolModule {
  WorkerPool: typeof WorkerPool;
  silentLogger: typeof silentLogger;
}

async function poolTarget(name: string, lib: PoolModule, env: Record<string, string> = {}): Promise<Target> {
  const pool = new lib.WorkerPool({ workers: 1, python, script: join(benchDir, "bench_worker.py"), logger: lib.silentLogger, maxInFlightPerWorker: 64, maxQueue: 10_000, env });
  await pool.start();
  const client = pool.client(BenchServiceDefinition);
  const payload = Buffer.alloc(16, 7);
  return { name, call: () => client.echo({ payload }), pids: pool.health().workers.map((w) => w.pid as number), stop: () => pool.shutdown() };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "pgsmall-"));
  const payload = Buffer.alloc(16, 7);
  // PYTHONPATH: the worker code of this checkout also under an interpreter that has procgrpc installed from a wheel.
  const targets: Target[] = [await poolTarget("procgrpc pipelined", { WorkerPool, silentLogger }, { PYTHONPATH: join(root, "python-worker") })];
  if (args.baseline) {
    const base = args.baseline;
    const lib = (await import(join(base, "src", "index.ts"))) as PoolModule;
    targets.push(await poolTarget("baseline pipelined", lib, { PYTHONPATH: join(base, "python-worker") }));
  }
  const bare = await startBareStreamServer(python, join(benchDir, "bare_stream_server.py"), join(dir, "bare.sock"));
  const bareCall = await bareStreamCall([bare.socket], payload);
  targets.push({ name: "bare gRPC stream", call: bareCall.call, pids: [bare.pid], stop: async () => (bareCall.close(), bare.stop()) });
  const json = await startPeerServer(python, join(benchDir, "peer_servers.py"), "json", join(dir, "json.sock"));
  const jsonCall = await jsonPeerCall([json.socket], payload);
  targets.push({ name: "pyproc-style JSON", call: jsonCall.call, pids: [json.pid], stop: async () => (jsonCall.close(), json.stop()) });

  const seq = new Map<string, RunFigures[]>(targets.map((t) => [t.name, []]));
  const load = new Map<string, RunFigures[]>(targets.map((t) => [t.name, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]);
      for (const t of order) {
        log(`round ${r + 1}/${rounds}: ${t.name}`);
        (seq.get(t.name) as RunFigures[]).push(await sequential(t.call, 2000, samples, t.pids));
        (load.get(t.name) as RunFigures[]).push(await throughput(t.call, 64, seconds, t.pids));
      }
    }
  } finally {
    for (const t of targets) await t.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const range = (xs: number[], f: (v: number) => string): string => `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
  const us = (v: number): string => `${Math.round(v)}`;
  const k = (v: number): string => `${(v / 1000).toFixed(1)}k`;
  const x = (v: number): string => `${v.toFixed(2)}×`;
  const lines = [
    `16 B echo, 1 worker, ${rounds} interleaved rounds (${samples} sequential calls, then ${seconds} s at c=64, per path per round); median (min–max)`,
    "",
    "| path | p50 µs | client CPU µs/call | worker CPU µs/call | calls/s at c=64 | client CPU µs/call at c=64 | worker CPU µs/call at c=64 |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const t of targets) {
    const s = seq.get(t.name) as RunFigures[];
    const l = load.get(t.name) as RunFigures[];
    lines.push(
      `| ${t.name} | ${range(s.map((f) => f.p50us), us)} | ${range(s.map((f) => f.clientCpuUsPerCall), us)} | ${range(s.map((f) => f.serverCpuUsPerCall), us)} | ${range(l.map((f) => f.callsPerSec), k)} | ${range(l.map((f) => f.clientCpuUsPerCall), us)} | ${range(l.map((f) => f.serverCpuUsPerCall), us)} |`,
    );
  }
  const perRound = (a: string, b: string, f: (x: RunFigures) => number, m: Map<string, RunFigures[]>): number[] =>
    (m.get(a) as RunFigures[]).map((fa, i) => f(fa) / f((m.get(b) as RunFigures[])[i]));
  lines.push("", "Ratios, round by round; median (min–max):", "");
  for (const name of targets.filter((t) => t.name.endsWith("pipelined")).map((t) => t.name)) {
    lines.push(`- ${name} / bare gRPC stream, p50 (target ≤ 1.1×): ${range(perRound(name, "bare gRPC stream", (f) => f.p50us, seq), x)}`);
    lines.push(`- ${name} / pyproc-style JSON, calls/s at c=64 (target ≥ 0.6×, stretch ≥ 1×): ${range(perRound(name, "pyproc-style JSON", (f) => f.callsPerSec, load), x)}`);
  }
  process.stdout.write(lines.join("\n") + "\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
