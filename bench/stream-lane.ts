// Stream messages through the shared-memory lane: a server stream and a client stream of 16
// messages, per message size, through one-worker pools with the lane (the default) and without it
// (`sharedMemoryLane: false`), rounds interleaved. Writes its own section of docs/benchmarks.md
// (between the stream-lane markers) and bench/results/stream-lane.json.
//   npx tsx bench/stream-lane.ts [--quick] [--out docs/benchmarks.md] [--json bench/results/stream-lane.json]
// Imported by bench/run.ts, it runs after the main benchmark (on `beforeExit`).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { WorkerPool, silentLogger } from "../src";
import { StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { scheduleSection, sectionMarkers } from "./lib/doc-section";
import { median, rssMiB } from "./lib/measure";
import { repoRoot } from "./lib/paths";

const root = repoRoot;
const MARKERS = sectionMarkers("stream-lane");
const python = process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python");
const MESSAGES = 16;

export interface StreamLaneRow {
  kind: "server stream" | "client stream";
  messageBytes: number;
  laneMs: number;
  inlineMs: number;
  /** CPU time per call (Node + the worker process), less sensitive to a loaded machine than wall time. */
  laneCpuMs: number;
  inlineCpuMs: number;
  rounds: number;
}

export interface StreamLaneResult {
  date: string;
  load: string;
  node: string;
  quick: boolean;
  rows: StreamLaneRow[];
  nodeRssMiB: { before: number; after: number };
}

const log = (msg: string): void => void process.stderr.write(`[bench stream-lane] ${msg}\n`);
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const TICK_MS = 10; // USER_HZ = 100 on Linux

/** CPU time used so far by this process and `workerPid` together, ms. */
function cpuMs(workerPid: number): number {
  const own = process.cpuUsage();
  const fields = readFileSync(`/proc/${workerPid}/stat`, "utf8").split(") ")[1].split(" ");
  return (own.user + own.system) / 1000 + (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

async function measure(quick: boolean): Promise<StreamLaneResult> {
  const load = existsSync("/proc/loadavg") ? readFileSync("/proc/loadavg", "utf8").trim() : "?";
  const options = { workers: 1, python, script: join(root, "test", "workers", "streaming_worker.py"), logger: silentLogger };
  const lane = new WorkerPool(options);
  const inline = new WorkerPool({ ...options, sharedMemoryLane: false });
  await Promise.all([lane.start(), inline.start()]);
  const rssBefore = rssMiB(process.pid);
  const rows: StreamLaneRow[] = [];
  try {
    const clients = { lane: lane.client(StreamingTestServiceDefinition), inline: inline.client(StreamingTestServiceDefinition) };
    const sizes = quick ? [16, 1 << 20] : [16, 64 * 1024, 1 << 20, 4 << 20];
    const rounds = quick ? 2 : 15;
    for (const size of sizes) {
      const chunk = { data: Buffer.alloc(size, 1) };
      const times = { server: { lane: [] as number[], inline: [] as number[] }, client: { lane: [] as number[], inline: [] as number[] } };
      const cpu = { server: { lane: 0, inline: 0 }, client: { lane: 0, inline: 0 } };
      const pids = { lane: lane.health().workers[0].pid as number, inline: inline.health().workers[0].pid as number };
      for (let round = -1; round < rounds; round++) {
        for (const variant of ["lane", "inline"] as const) {
          const c = clients[variant];
          let cpu0 = cpuMs(pids[variant]);
          let t0 = now();
          let bytes = 0;
          for await (const m of c.count({ n: MESSAGES, payloadSize: size })) bytes += m.payload.length;
          const serverMs = now() - t0;
          const serverCpu = cpuMs(pids[variant]) - cpu0;
          if (bytes !== size * MESSAGES) throw new Error(`server stream: ${bytes} bytes, expected ${size * MESSAGES}`);
          cpu0 = cpuMs(pids[variant]);
          t0 = now();
          const summary = await c.upload(Array.from({ length: MESSAGES }, () => chunk));
          const clientMs = now() - t0;
          const clientCpu = cpuMs(pids[variant]) - cpu0;
          if (Number(summary.bytes) !== size * MESSAGES) throw new Error(`client stream: ${summary.bytes} bytes, expected ${size * MESSAGES}`);
          if (round >= 0) {
            times.server[variant].push(serverMs);
            times.client[variant].push(clientMs);
            cpu.server[variant] += serverCpu;
            cpu.client[variant] += clientCpu;
          }
        }
      }
      for (const kind of ["server", "client"] as const) {
        const row: StreamLaneRow = { kind: `${kind} stream`, messageBytes: size, laneMs: median(times[kind].lane), inlineMs: median(times[kind].inline), laneCpuMs: cpu[kind].lane / rounds, inlineCpuMs: cpu[kind].inline / rounds, rounds };
        log(`${row.kind} ${MESSAGES} × ${size} B: lane ${row.laneMs.toFixed(2)} ms (CPU ${row.laneCpuMs.toFixed(1)}), off ${row.inlineMs.toFixed(2)} ms (CPU ${row.inlineCpuMs.toFixed(1)})`);
        rows.push(row);
      }
    }
  } finally {
    await Promise.all([lane.shutdown(), inline.shutdown()]);
  }
  return { date: new Date().toISOString(), load, node: process.version, quick, rows, nodeRssMiB: { before: rssBefore, after: rssMiB(process.pid) } };
}

const size = (b: number): string => (b >= 1 << 20 ? `${b / (1 << 20)} MiB` : b >= 1024 ? `${b / 1024} KiB` : `${b} B`);

function render(r: StreamLaneResult): string {
  return [
    MARKERS.start,
    "## Stream messages through the shared-memory lane",
    "",
    `Measured ${r.date}${r.quick ? " (--quick: not figures to quote)" : ""} (load average ${r.load}) by \`bench/stream-lane.ts\` with Node ${r.node}:`,
    `one stream of ${MESSAGES} messages per call (test/workers/streaming_worker.py \`Count\` and \`Upload\`, \`def\` servicers), through`,
    "a one-worker pool with the lane (the default, threshold 256 KiB) and one with `sharedMemoryLane: false`, rounds",
    "interleaved; median of the rounds. With the lane, stream responses of at least 256 KiB travel as files (requests stay inline); smaller responses carry a one-byte frame tag.",
    "",
    "CPU is Node's plus the worker's per call (/proc, 10 ms ticks summed over the rounds): less sensitive than wall time",
    "to other load on the machine.",
    "",
    "| call | message | rounds | lane (default) | lane off | lane / off | CPU, lane | CPU, off | CPU lane / off |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...r.rows.map((row) => `| ${row.kind} | ${size(row.messageBytes)} | ${row.rounds} | ${row.laneMs.toFixed(2)} ms | ${row.inlineMs.toFixed(2)} ms | ${(row.laneMs / row.inlineMs).toFixed(2)}× | ${row.laneCpuMs.toFixed(1)} ms | ${row.inlineCpuMs.toFixed(1)} ms | ${(row.laneCpuMs / row.inlineCpuMs).toFixed(2)}× |`),
    "",
    `Node's RSS ${r.nodeRssMiB.before.toFixed(0)} MiB before the rows, ${r.nodeRssMiB.after.toFixed(0)} MiB after.`,
    MARKERS.end,
  ].join("\n");
}

scheduleSection<StreamLaneResult>({ name: "stream-lane", title: "stream messages through the lane", root, measure, render, log }, require.main === module);
