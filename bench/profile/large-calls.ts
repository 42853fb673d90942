// Sequential large echo calls through a one-worker pool, for profiling the shared-memory lane (issue 15 §1):
//   node --cpu-prof --cpu-prof-dir DIR --import tsx bench/profile/large-calls.ts --size 1048576 --calls 300
// Options: --floor (the binary socket floor instead of procgrpc, for a same-moment comparison), --lane default|always|off|pipe, --carrier socket-pair|grpc-stream, --worker-env NAME=VALUE,… (e.g. malloc tunables), --python.
// Prints one JSON line: calls, p50 µs, CPU per call on both sides.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { WorkerPool, silentLogger } from "../../src";
import { BenchServiceDefinition } from "../../src/gen/bench/v1/bench";
import { sequential } from "../lib/measure";
import { binaryPeerCall, startPeerServer } from "../lib/peer-clients";
import { repoRoot } from "../lib/paths";

const root = repoRoot;
const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: String(1 << 20) },
    calls: { type: "string", default: "300" },
    warmup: { type: "string", default: "30" },
    lane: { type: "string", default: "default" },
    // "pipe": lane off, and requests of any size stay on the pipe (pipelineMaxRequestBytes lifted).
    carrier: { type: "string", default: "socket-pair" },
    python: { type: "string", default: process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python") },
    "worker-env": { type: "string", default: "" },
    floor: { type: "boolean", default: false },
  },
});

async function floor(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "pg-floor-"));
  const server = await startPeerServer(args.python as string, join(root, "bench", "peer_servers.py"), "binary", join(dir, "floor.sock"));
  const peer = await binaryPeerCall([server.socket], Buffer.alloc(Number(args.size), 7));
  try {
    const f = await sequential(peer.call, Number(args.warmup), Number(args.calls), [server.pid]);
    console.log(JSON.stringify({ path: "floor", calls: f.calls, p50us: Math.round(f.p50us), clientCpuUs: Math.round(f.clientCpuUsPerCall), workerCpuUs: Math.round(f.serverCpuUsPerCall) }));
  } finally {
    peer.close();
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const workerEnv = Object.fromEntries((args["worker-env"] ?? "").split(",").filter(Boolean).map((kv) => kv.split("=") as [string, string]));
  const lane =
    args.lane === "off" ? { sharedMemoryLane: false as const }
    : args.lane === "always" ? { sharedMemoryLane: { thresholdBytes: 0 } }
    : args.lane === "pipe" ? { sharedMemoryLane: false as const, pipelineMaxRequestBytes: 2 ** 31 - 1 }
    : {};
  const pipelineCarrier = args.carrier as "socket-pair" | "grpc-stream";
  const pool = new WorkerPool({ workers: 1, python: args.python, script: join(root, "bench", "bench_worker.py"), logger: silentLogger, requestTimeoutMs: 600_000, env: workerEnv, pipelineCarrier, ...lane });
  await pool.start();
  try {
    const client = pool.client(BenchServiceDefinition);
    const payload = Buffer.alloc(Number(args.size), 7);
    const echo = async (): Promise<void> => {
      const r = await client.echo({ payload });
      if (r.payload.length !== payload.length) throw new Error("short echo");
    };
    const pid = pool.health().workers[0].pid as number;
    const f = await sequential(echo, Number(args.warmup), Number(args.calls), [pid]);
    console.log(JSON.stringify({ calls: f.calls, p50us: Math.round(f.p50us), clientCpuUs: Math.round(f.clientCpuUsPerCall), workerCpuUs: Math.round(f.serverCpuUsPerCall) }));
  } finally {
    await pool.shutdown();
  }
}

void (args.floor ? floor() : main());
