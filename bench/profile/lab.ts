// Measures the lab variants of the worker's pipeline servicer (bench/profile/lab_pipeline.py)
// against procgrpc's own and the bare gRPC stream, interleaved, with the real Node pool:
//   npx tsx bench/profile/lab.ts [--rounds 2] [--variants base,yield,notimer,inline,...]
// Each variant first answers an Echo and a Fail (INVALID_ARGUMENT) correctly, then: sequential
// 16 B p50 and worker CPU per call, and calls/s at concurrency 64. Prints a markdown table.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RpcError, WorkerPool, silentLogger } from "../../src";
import { BenchServiceDefinition } from "../../src/gen/bench/v1/bench";
import { bareStreamCall, startBareStreamServer } from "../lib/bare-stream";
import { sequential, throughput, type Call, type RunFigures } from "../lib/measure";

const root = join(__dirname, "..", "..");
const python = join(root, ".venv", "bin", "python");
const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "2" }, variants: { type: "string", default: "base,yield,notimer,inline,yield+notimer+inline" }, seconds: { type: "string", default: "2" } } });

async function measure(call: Call, pid: number): Promise<{ seq: RunFigures; load: RunFigures }> {
  const seq = await sequential(call, 1000, 3000, [pid]);
  const load = await throughput(call, 64, Number(args.seconds), [pid]);
  return { seq, load };
}

async function main(): Promise<void> {
  const payload = Buffer.alloc(16, 7);
  const variants = ["procgrpc", ...(args.variants as string).split(","), "bare stream"];
  const results = new Map<string, { seq: RunFigures; load: RunFigures }[]>();
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const v of variants) {
      let r: { seq: RunFigures; load: RunFigures };
      if (v === "bare stream") {
        const server = await startBareStreamServer(python, join(root, "bench", "bare_stream_server.py"), `/tmp/pglab-bare-${process.pid}.sock`);
        const made = await bareStreamCall([server.socket], payload);
        r = await measure(made.call, server.pid);
        made.close();
        server.stop();
      } else {
        const script = v === "procgrpc" ? join(root, "bench", "bench_worker.py") : join(__dirname, "lab_worker.py");
        const pool = new WorkerPool({ workers: 1, python, script, logger: silentLogger, maxInFlightPerWorker: 64, env: { PGLAB_VARIANT: v.split("+").join(",") } });
        await pool.start();
        const client = pool.client(BenchServiceDefinition);
        const echoed = await client.echo({ payload });
        if (echoed.payload.length !== 16) throw new Error(`${v}: wrong echo`);
        const failed = await client.fail({}).then(() => undefined, (e: unknown) => e);
        if (!(failed instanceof RpcError) || failed.code() !== 3) throw new Error(`${v}: Fail did not come back as INVALID_ARGUMENT: ${String(failed)}`);
        r = await measure(() => client.echo({ payload }), pool.health().workers[0].pid as number);
        await pool.shutdown();
      }
      const list = results.get(v) ?? [];
      list.push(r);
      results.set(v, list);
      process.stderr.write(`[lab] round ${round + 1} ${v}: p50 ${r.seq.p50us.toFixed(0)} µs, worker ${r.seq.serverCpuUsPerCall.toFixed(0)} µs/call, c=64 ${r.load.callsPerSec.toFixed(0)}/s (${r.load.serverCpuUsPerCall.toFixed(1)} µs/call)\n`);
    }
  }
  const range = (xs: number[], digits = 0): string => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
  process.stdout.write("| variant | 16 B p50 (µs) | worker CPU/call, sequential (µs) | client CPU/call, sequential (µs) | calls/s at c=64 | worker CPU/call at c=64 (µs) |\n|---|---|---|---|---|---|\n");
  for (const [v, rs] of results) {
    process.stdout.write(`| ${v} | ${range(rs.map((r) => r.seq.p50us))} | ${range(rs.map((r) => r.seq.serverCpuUsPerCall))} | ${range(rs.map((r) => r.seq.clientCpuUsPerCall))} | ${range(rs.map((r) => r.load.callsPerSec))} | ${range(rs.map((r) => r.load.serverCpuUsPerCall), 1)} |\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
