// Sequential large echo calls through a one-worker pool, for profiling the shared-memory lane (issue 15 §1):
//   node --cpu-prof --cpu-prof-dir DIR --import tsx bench/profile/large-calls.ts --size 1048576 --calls 300
// Prints one JSON line: calls, p50 µs, CPU per call on both sides.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { WorkerPool, silentLogger } from "../../src";
import { BenchServiceDefinition } from "../../src/gen/bench/v1/bench";

const root = join(__dirname, "..", "..");
const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: String(1 << 20) },
    calls: { type: "string", default: "300" },
    warmup: { type: "string", default: "30" },
    lane: { type: "string", default: "default" },
    python: { type: "string", default: process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python") },
    // Extra worker environment, NAME=VALUE,NAME=VALUE (e.g. malloc tunables).
    "worker-env": { type: "string", default: "" },
  },
});

function workerCpuUs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return ((Number(f[11]) + Number(f[12])) / 100) * 1e6;
}

async function main(): Promise<void> {
  const workerEnv = Object.fromEntries((args["worker-env"] ?? "").split(",").filter(Boolean).map((kv) => kv.split("=") as [string, string]));
  const lane = args.lane === "off" ? { sharedMemoryLane: false as const } : args.lane === "always" ? { sharedMemoryLane: { thresholdBytes: 0 } } : {};
  const pool = new WorkerPool({ workers: 1, python: args.python, script: join(root, "bench", "bench_worker.py"), logger: silentLogger, requestTimeoutMs: 600_000, env: workerEnv, ...lane });
  await pool.start();
  try {
    const client = pool.client(BenchServiceDefinition);
    const payload = Buffer.alloc(Number(args.size), 7);
    for (let i = 0; i < Number(args.warmup); i++) await client.echo({ payload });
    const pid = pool.health().workers[0].pid as number;
    const n = Number(args.calls);
    const lat: number[] = [];
    const c0 = process.cpuUsage();
    const w0 = workerCpuUs(pid);
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      const r = await client.echo({ payload });
      lat.push(Number(process.hrtime.bigint() - t) / 1000);
      if (r.payload.length !== payload.length) throw new Error("short echo");
    }
    const c = process.cpuUsage(c0);
    lat.sort((a, b) => a - b);
    console.log(JSON.stringify({ calls: n, p50us: Math.round(lat[n >> 1]), clientCpuUs: Math.round((c.user + c.system) / n), workerCpuUs: Math.round((workerCpuUs(pid) - w0) / n) }));
  } finally {
    await pool.shutdown();
  }
}

void main();
