// Where the pipelined transport stops paying: unary vs pipelined latency and throughput by request
// size, with the pipeline threshold lifted. `npx tsx bench/crossover.ts` (docs/worker-protocol.md).
import { join } from "node:path";
import { WorkerPool, silentLogger } from "../src";
import { BenchServiceDefinition } from "../src/gen/bench/v1/bench";
import { sequential, throughput } from "./lib/measure";
import { repoRoot } from "./lib/paths";
async function main() {
  const mk = (transport: "unary" | "pipelined") => new WorkerPool({ workers: 1, python: join(repoRoot, ".venv/bin/python"), script: join(repoRoot, "bench/bench_worker.py"), logger: silentLogger, transport, pipelineMaxRequestBytes: 64 << 20, maxInFlightPerWorker: 64 });
  const pu = mk("unary"), pp = mk("pipelined");
  await Promise.all([pu.start(), pp.start()]);
  const cu = pu.client(BenchServiceDefinition), cp = pp.client(BenchServiceDefinition);
  for (const size of [4096, 16384, 65536, 262144, 1048576]) {
    const payload = Buffer.alloc(size, 1);
    const out: string[] = [];
    for (const [name, c, pool] of [["unary", cu, pu], ["pipelined", cp, pp]] as const) {
      const pid = pool.health().workers[0].pid as number;
      const s = await sequential(() => c.echo({ payload }), 100, size > 100000 ? 150 : 600, [pid]);
      const t = await throughput(() => c.echo({ payload }), 16, 1.5, [pid]);
      out.push(`${name} p50 ${Math.round(s.p50us)}µs c16 ${Math.round(t.callsPerSec)}/s`);
    }
    console.log(size, out.join(" | "));
  }
  await Promise.all([pu.shutdown(), pp.shutdown()]);
}
main();
