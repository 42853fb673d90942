// Where the shared-memory lane starts to pay (issue 15 §1: "threshold measured, report the crossover"):
// unary echo round trips and 16-message server streams per message size, through one-worker pools
// with the lane for every message (`thresholdBytes: 0`) and without it (`sharedMemoryLane: false`),
// rounds interleaved; median of the rounds' p50s. Prints a markdown table (docs/shared-memory-lane.md §6).
//   node scripts/node.mjs --import tsx bench/lane-crossover.ts [--rounds 5]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { WorkerPool, silentLogger } from "../src";
import { BenchServiceDefinition } from "../src/gen/bench/v1/bench";
import { StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { median, sequential } from "./lib/measure";
import { repoRoot } from "./lib/paths";

const root = repoRoot;
const python = process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python");
const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "5" } } });
const rounds = Number(args.rounds);
const kib = (b: number): string => (b >= 1 << 20 ? `${b / (1 << 20)} MiB` : `${b / 1024} KiB`);
const usOf = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1000;

async function main(): Promise<void> {
  const pool = (script: string, sharedMemoryLane: false | { thresholdBytes: number }): WorkerPool =>
    new WorkerPool({ workers: 1, python, script: join(root, script), logger: silentLogger, sharedMemoryLane });
  const unary = { lane: pool("bench/bench_worker.py", { thresholdBytes: 0 }), off: pool("bench/bench_worker.py", false) };
  const streams = { lane: pool("test/workers/streaming_worker.py", { thresholdBytes: 0 }), off: pool("test/workers/streaming_worker.py", false) };
  const all = [...Object.values(unary), ...Object.values(streams)];
  await Promise.all(all.map((p) => p.start()));
  const lines = ["| call | message | lane for every message | lane off | lane / off |", "|---|---:|---:|---:|---:|"];
  try {
    for (const size of [16 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20]) {
      const payload = Buffer.alloc(size, 3);
      const calls = size >= 512 << 10 ? 60 : 200;
      const p50s = { lane: [] as number[], off: [] as number[] };
      for (let round = -1; round < rounds; round++) {
        for (const k of ["lane", "off"] as const) {
          const client = unary[k].client(BenchServiceDefinition);
          const { p50us } = await sequential(() => client.echo({ payload }), 0, calls, []);
          if (round >= 0) p50s[k].push(p50us);
        }
      }
      lines.push(`| unary echo | ${kib(size)} | ${median(p50s.lane).toFixed(0)} µs | ${median(p50s.off).toFixed(0)} µs | ${(median(p50s.lane) / median(p50s.off)).toFixed(2)}× |`);
      process.stderr.write(`${lines[lines.length - 1]}\n`);
    }
    for (const size of [64 << 10, 128 << 10, 256 << 10, 512 << 10]) {
      const times = { lane: [] as number[], off: [] as number[] };
      for (let round = -1; round < rounds * 2; round++) {
        for (const k of ["lane", "off"] as const) {
          const t = process.hrtime.bigint();
          let bytes = 0;
          for await (const m of streams[k].client(StreamingTestServiceDefinition).count({ n: 16, payloadSize: size })) bytes += m.payload.length;
          if (bytes !== 16 * size) throw new Error(`server stream: ${bytes} bytes`);
          if (round >= 0) times[k].push(usOf(t));
        }
      }
      lines.push(`| server stream, 16 messages | ${kib(size)} | ${(median(times.lane) / 1000).toFixed(2)} ms | ${(median(times.off) / 1000).toFixed(2)} ms | ${(median(times.lane) / median(times.off)).toFixed(2)}× |`);
      process.stderr.write(`${lines[lines.length - 1]}\n`);
    }
  } finally {
    await Promise.all(all.map((p) => p.shutdown()));
  }
  console.log(lines.join("\n"));
}

void main();
