// `npm run bench`: procgrpc against its floors, side by side in one run on this machine, with
// the same Python echo logic everywhere. Writes docs/benchmarks.md and bench/results/latest.json.
//   npm run bench [-- --quick] [-- --out docs/benchmarks.md --json bench/results/latest.json]
//     (scripts/bench.mjs: compiles src/ and bench/ with tsc, then runs this file as JavaScript)
//   npx tsx bench/run.ts [same options]   (from the sources, for quick checks)
//   npx tsx bench/run.ts --render bench/results/latest.json   (re-render the report only)
// --quick runs a tiny matrix (used by test/bench-harness.test.ts to prove the harness works).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { Client, credentials, type ServiceError } from "@grpc/grpc-js";
import { WorkerPool, silentLogger, type WorkerPoolOptions } from "../src";
import { BenchServiceDefinition, EchoRequest, EchoResponse } from "../src/gen/bench/v1/bench";
import { median, rssMiB, sequential, throughput, type Call } from "./lib/measure";
import { binaryPeerCall, jsonPeerCall, startPeerServer, type PeerServer } from "./lib/peer-clients";
import { featureVariants } from "./features";
import "./dlq-replay";
import "./elastic";
import "./stream-lane";
import { measureLarge } from "./large";
import { measureTargetRounds } from "./target-rounds";
import type { BenchResult, Row } from "./result";
import { bareStreamCall, startBareStreamServer } from "./lib/bare-stream";
import "./install-footprint";
import { benchDir, repoRoot } from "./lib/paths";

const root = repoRoot;
const python = process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python");
const benchWorker = join(benchDir, "bench_worker.py");
const peerScript = join(benchDir, "peer_servers.py");
const bareStreamScript = join(benchDir, "bare_stream_server.py");

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string", default: join(root, "docs", "benchmarks.md") },
    json: { type: "string", default: join(root, "bench", "results", "latest.json") },
    render: { type: "string" },
  },
});
const quick = args.quick as boolean;

const PAYLOADS = quick ? [16, 65536] : [16, 1024, 65536, 1048576];
const CONCURRENCY = quick ? [4] : [1, 16, 64];
const WORKERS = quick ? [1] : [1, 2];
const THROUGHPUT_SECONDS = quick ? 0.2 : 2;
const warmupFor = (size: number): number => (quick ? 20 : size >= 1 << 20 ? 200 : size >= 65536 ? 1000 : 5000);
const samplesFor = (size: number): number => (quick ? 30 : size >= 1 << 20 ? 300 : size >= 65536 ? 1500 : 4000);

type Path = "procgrpc unary" | "procgrpc pipelined" | "procgrpc pipelined, gRPC stream" | "raw grpc-js" | "pyproc-style JSON" | "socket floor (binary)" | "bare gRPC stream, 1 message per call";
const PATHS: Path[] = ["procgrpc unary", "procgrpc pipelined", "procgrpc pipelined, gRPC stream", "raw grpc-js", "pyproc-style JSON", "socket floor (binary)", "bare gRPC stream, 1 message per call"];


const log = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

function poolOptions(workers: number, extra: Partial<WorkerPoolOptions> = {}): WorkerPoolOptions {
  return { workers, python, script: benchWorker, logger: silentLogger, maxInFlightPerWorker: 64, maxQueue: 10_000, ...extra };
}

function rawGrpcCall(sockets: readonly string[], payload: Buffer): { call: Call; close: () => void } {
  const clients = sockets.map((s) => new Client(`unix:${s}`, credentials.createInsecure(), { "grpc.max_receive_message_length": -1, "grpc.max_send_message_length": -1 }));
  const request = { payload };
  let n = 0;
  return {
    call: () =>
      new Promise((resolve, reject) =>
        clients[n++ % clients.length].makeUnaryRequest(
          "/bench.v1.BenchService/Echo",
          (r: EchoRequest) => Buffer.from(EchoRequest.encode(r).finish()),
          (b: Buffer) => EchoResponse.decode(b),
          request,
          (err: ServiceError | null, res?: EchoResponse) => (err ? reject(err) : res?.payload.length === payload.length ? resolve(res) : reject(new Error("raw grpc-js: wrong reply"))),
        ),
      ),
    close: () => clients.forEach((c) => c.close()),
  };
}

/** Everything one worker count needs: two pools (unary, pipelined), two peer servers of each kind. */
async function startTargets(workers: number): Promise<{ unary: WorkerPool; pipelined: WorkerPool; grpcPipe: WorkerPool; json: PeerServer[]; binary: PeerServer[]; bare: PeerServer[]; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "pgbench-"));
  const unary = new WorkerPool(poolOptions(workers, { transport: "unary" }));
  const pipelined = new WorkerPool(poolOptions(workers, { transport: "pipelined" }));
  // The pipeline on its other carrier, for the comparison (the default is the socket pair).
  const grpcPipe = new WorkerPool(poolOptions(workers, { transport: "pipelined", pipelineCarrier: "grpc-stream" }));
  await Promise.all([unary.start(), pipelined.start(), grpcPipe.start()]);
  const json = await Promise.all(Array.from({ length: workers }, (_, i) => startPeerServer(python, peerScript, "json", join(dir, `json${i}.sock`))));
  const binary = await Promise.all(Array.from({ length: workers }, (_, i) => startPeerServer(python, peerScript, "binary", join(dir, `bin${i}.sock`))));
  const bare = await Promise.all(Array.from({ length: workers }, (_, i) => startBareStreamServer(python, bareStreamScript, join(dir, `bare${i}.sock`))));
  return {
    unary,
    pipelined,
    grpcPipe,
    json,
    binary,
    bare,
    stop: async () => {
      [...json, ...binary, ...bare].forEach((s) => s.stop());
      await Promise.all([unary.shutdown(), pipelined.shutdown(), grpcPipe.shutdown()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function callFor(path: Path, t: Awaited<ReturnType<typeof startTargets>>, payload: Buffer): Promise<{ call: Call; close: () => void; pids: number[] }> {
  const pidsOf = (pool: WorkerPool): number[] => pool.health().workers.map((w) => w.pid as number);
  switch (path) {
    case "procgrpc unary": {
      const client = t.unary.client(BenchServiceDefinition);
      return { call: () => client.echo({ payload }), close: () => undefined, pids: pidsOf(t.unary) };
    }
    case "procgrpc pipelined": {
      const client = t.pipelined.client(BenchServiceDefinition);
      return { call: () => client.echo({ payload }), close: () => undefined, pids: pidsOf(t.pipelined) };
    }
    case "procgrpc pipelined, gRPC stream": {
      const client = t.grpcPipe.client(BenchServiceDefinition);
      return { call: () => client.echo({ payload }), close: () => undefined, pids: pidsOf(t.grpcPipe) };
    }
    case "raw grpc-js":
      return { ...rawGrpcCall(t.unary.health().workers.map((w) => w.socket), payload), pids: pidsOf(t.unary) };
    case "pyproc-style JSON":
      return { ...(await jsonPeerCall(t.json.map((s) => s.socket), payload)), pids: t.json.map((s) => s.pid) };
    case "socket floor (binary)":
      return { ...(await binaryPeerCall(t.binary.map((s) => s.socket), payload)), pids: t.binary.map((s) => s.pid) };
    case "bare gRPC stream, 1 message per call":
      return { ...(await bareStreamCall(t.bare.map((s) => s.socket), payload)), pids: t.bare.map((s) => s.pid) };
  }
}

async function measureMatrix(): Promise<{ latency: Row[]; load: Row[] }> {
  const latency: Row[] = [];
  const load: Row[] = [];
  const roundTwo: { path: Path; size: number; call: () => ReturnType<typeof callFor> }[] = [];
  for (const workers of WORKERS) {
    const targets = await startTargets(workers);
    try {
      for (const size of PAYLOADS) {
        const payload = Buffer.alloc(size, 7);
        for (const path of PATHS) {
          const { call, close, pids } = await callFor(path, targets, payload);
          try {
            if (workers === 1) {
              log(`latency ${path} ${size} B`);
              latency.push({ path, payload: size, concurrency: 1, workers, ...(await sequential(call, warmupFor(size), samplesFor(size), pids)) });
              // A second round after the others have run; the report keeps the better p50 of the two,
              // so a path measured first on a cold machine is not penalised.
              roundTwo.push({ path, size, call: () => callFor(path, targets, payload) });
            }
            for (const concurrency of CONCURRENCY) {
              log(`throughput ${path} ${size} B c=${concurrency} workers=${workers}`);
              load.push({ path, payload: size, concurrency, workers, ...(await throughput(call, concurrency, THROUGHPUT_SECONDS, pids)) });
            }
          } finally {
            close();
          }
        }
        for (const again of roundTwo.splice(0)) {
          const { call, close, pids } = await again.call();
          try {
            const second = await sequential(call, warmupFor(again.size), samplesFor(again.size), pids);
            const i = latency.findIndex((r) => r.path === again.path && r.payload === again.size);
            if (second.p50us < latency[i].p50us) latency[i] = { ...latency[i], ...second };
          } finally {
            close();
          }
        }
      }
    } finally {
      await targets.stop();
    }
  }
  return { latency, load };
}

async function measureFeatures(): Promise<Row[]> {
  const rows: Row[] = [];
  const payload = Buffer.alloc(16, 7);
  const variants = await featureVariants();
  for (const variant of quick ? variants.slice(0, 2) : variants) {
    const pool = new WorkerPool(poolOptions(1, variant.pool));
    await pool.start();
    try {
      const client = pool.client(BenchServiceDefinition, variant.client);
      const call: Call = () => client.echo({ payload }, variant.call?.());
      const pids = pool.health().workers.map((w) => w.pid as number);
      log(`feature ${variant.name}`);
      rows.push({ path: variant.name, payload: 16, concurrency: 1, workers: 1, ...(await sequential(call, warmupFor(16), samplesFor(16), pids)) });
      rows.push({ path: variant.name, payload: 16, concurrency: 64, workers: 1, ...(await throughput(call, 64, THROUGHPUT_SECONDS, pids)) });
    } finally {
      await pool.shutdown();
    }
  }
  await Promise.all(variants.map((v) => v.close?.()));
  return rows;
}

async function measureStartup(): Promise<{ importGrpcMs: number; coldStartMs: number; restartMs: number; rssMiB: number }> {
  const rounds = quick ? 1 : 7;
  const importTimes: number[] = [];
  const cold: number[] = [];
  const restart: number[] = [];
  let rss = 0;
  // The baseline and the pool alternate, so that a change in the machine's load moves both.
  for (let i = 0; i < rounds; i++) {
    const i0 = process.hrtime.bigint();
    const r = spawnSync(python, ["-c", "import grpc"]);
    if (r.status !== 0) throw new Error(`python -c "import grpc" failed: ${r.stderr}`);
    importTimes.push(Number(process.hrtime.bigint() - i0) / 1e6);
    const pool = new WorkerPool(poolOptions(1, { restart: { initialDelayMs: 0, maxDelayMs: 0, multiplier: 1 } } as Partial<WorkerPoolOptions>));
    const client = pool.client(BenchServiceDefinition);
    const t = process.hrtime.bigint();
    await pool.start();
    await client.echo({ payload: Buffer.alloc(16) });
    cold.push(Number(process.hrtime.bigint() - t) / 1e6);
    const pid = pool.health().workers[0].pid as number;
    rss = rssMiB(pid);
    const back = new Promise<void>((resolve) => pool.once("workerReady", () => resolve()));
    const k = process.hrtime.bigint();
    process.kill(pid, "SIGKILL");
    await back;
    await client.echo({ payload: Buffer.alloc(16) });
    restart.push(Number(process.hrtime.bigint() - k) / 1e6);
    await pool.shutdown();
  }
  return { importGrpcMs: median(importTimes), coldStartMs: median(cold), restartMs: median(restart), rssMiB: rss };
}

function versions(): Record<string, string> {
  const py = (code: string): string => execFileSync(python, ["-c", code], { encoding: "utf8" }).trim();
  return {
    node: process.version,
    "@grpc/grpc-js": (require("@grpc/grpc-js/package.json") as { version: string }).version,
    python: py("import platform; print(platform.python_version())"),
    grpcio: py("import grpc; print(grpc.__version__)"),
    protobuf: py("import google.protobuf; print(google.protobuf.__version__)"),
  };
}

async function main(): Promise<void> {
  if (args.render) {
    // Re-render the report from saved results (e.g. after editing bench/report.ts).
    const saved = JSON.parse(readFileSync(args.render as string, "utf8")) as BenchResult;
    const { renderMarkdown } = await import("./report");
    writeFileSync(args.out as string, renderMarkdown(saved));
    log(`rendered ${args.out} from ${args.render}`);
    return;
  }
  const started = new Date();
  // First, while this process is small: a worker spawned from a process with a large resident
  // set (after the 64 MiB rows) takes longer to start, which is not the workers' start-up.
  const startup = await measureStartup();
  const matrix = await measureMatrix();
  const large = await measureLarge({ python, benchWorker, quick, log });
  const features = await measureFeatures();
  const targetRounds = await measureTargetRounds({ python, benchWorker, quick, log });
  const result = {
    date: started.toISOString(),
    machine: { cpus: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`, memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), load: execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).trim() },
    versions: versions(),
    quick,
    ...matrix,
    large,
    features,
    targetRounds,
    startup,
  };
  mkdirSync(dirname(args.json as string), { recursive: true });
  writeFileSync(args.json as string, JSON.stringify(result, null, 2));
  const { renderMarkdown } = await import("./report");
  writeFileSync(args.out as string, renderMarkdown(result));
  log(`wrote ${args.out} and ${args.json}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench] FAILED: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
