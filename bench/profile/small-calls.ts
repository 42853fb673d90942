// Drives 16 B pipelined calls at one concurrency for a while, for profiling (issue 15 §2):
//   node --cpu-prof --cpu-prof-dir DIR --import tsx bench/profile/small-calls.ts --concurrency 64 --seconds 10
// Options: --python WRAPPER (e.g. a py-spy wrapper, bench/profile/py-spy-python.sh), --script WORKER
// (default bench/bench_worker.py), --transport pipelined|unary, --bare (the bare gRPC stream
// instead of procgrpc, for the same profile of the floor). Prints one JSON line: calls, seconds,
// CPU per call on both sides.
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as sourceBuild from "../../src";
import { BenchServiceDefinition } from "../../src/gen/bench/v1/bench";
import { bareStreamCall, startBareStreamServer } from "../lib/bare-stream";
import { throughput, type Call } from "../lib/measure";
import { repoRoot } from "../lib/paths";

const root = repoRoot;
const { values: args } = parseArgs({
  options: {
    concurrency: { type: "string", default: "64" },
    seconds: { type: "string", default: "10" },
    python: { type: "string", default: process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python") },
    script: { type: "string", default: join(root, "bench", "bench_worker.py") },
    transport: { type: "string", default: "pipelined" },
    bare: { type: "boolean", default: false },
    warmup: { type: "string", default: "3000" },
    // The shipped build (dist/index.cjs, `npx tsup`) instead of src/ through tsx: tsx compiles with
    // esbuild's keepNames, which wraps every closure created per call in a __name() call.
    dist: { type: "boolean", default: false },
  },
});

async function main(): Promise<void> {
  const payload = Buffer.alloc(16, 7);
  const concurrency = Number(args.concurrency);
  let call: Call;
  let pid: number;
  let stop: () => Promise<void>;
  if (args.bare) {
    const server = await startBareStreamServer(args.python as string, join(root, "bench", "bare_stream_server.py"), `/tmp/pgprof-bare-${process.pid}.sock`);
    const made = await bareStreamCall([server.socket], payload);
    call = made.call;
    pid = server.pid;
    stop = async () => {
      made.close();
      // SIGTERM, not the harness's SIGKILL: a py-spy wrapper must pass it on and write its profile.
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          try {
            process.kill(server.pid, 0);
          } catch {
            clearInterval(check);
            resolve();
          }
        }, 50);
        process.kill(server.pid, "SIGTERM");
      });
    };
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const lib = (args.dist ? require(join(root, "dist", "index.cjs")) : sourceBuild) as typeof sourceBuild;
    const { WorkerPool, silentLogger } = lib;
    const pool = new WorkerPool({ workers: 1, python: args.python as string, script: args.script as string, logger: silentLogger, maxInFlightPerWorker: 64, transport: args.transport as "pipelined" | "unary", startTimeoutMs: 60_000 });
    await pool.start();
    const client = pool.client(BenchServiceDefinition);
    call = () => client.echo({ payload });
    pid = pool.health().workers[0].pid as number;
    stop = () => pool.shutdown();
  }
  for (let i = 0; i < Number(args.warmup); i++) await call();
  // The measured window in the profiler's clock (CLOCK_MONOTONIC µs), for summarize-cpuprofile.ts.
  const windowStartUs = Number(process.hrtime.bigint() / 1000n);
  const r = await throughput(call, concurrency, Number(args.seconds), [pid]);
  const windowEndUs = Number(process.hrtime.bigint() / 1000n);
  await stop();
  process.stdout.write(`${JSON.stringify({ concurrency, dist: args.dist, windowStartUs, windowEndUs, ...r })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
