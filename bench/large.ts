// Large payloads (issue 15 §1): sequential echo round trips from 64 KiB to 64 MiB on every path,
// procgrpc with its shared-memory lane as configured by default (from 256 KiB), for every message
// and turned off (the crossover is where the last two cross), and resident memory on both sides
// (the 64 MiB target is "flat RSS"). Called by bench/run.ts; its rows are rendered by bench/report.ts.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkerPool, silentLogger } from "../src";
import { BenchServiceDefinition } from "../src/gen/bench/v1/bench";
import { bareStreamCall } from "./lib/bare-stream";
import { startComparisonServers } from "./lib/comparison-servers";
import { processCpuSeconds, rssMiB, type Call } from "./lib/measure";
import { binaryPeerCall, jsonPeerCall, type PeerServer } from "./lib/peer-clients";

/** The paths of the large-payload table, in the order they are measured at each size. */
export const LARGE_PATHS = [
  "procgrpc (default transport)",
  "procgrpc, lane for every message",
  "procgrpc, sharedMemoryLane: false",
  "bare gRPC stream, 1 message per call",
  "socket floor (binary)",
  "pyproc-style JSON",
] as const;
export type LargePath = (typeof LARGE_PATHS)[number];

/** One measured path at one size. */
export interface LargeRow {
  path: LargePath;
  payload: number;
  calls: number;
  p50us: number;
  minUs: number;
  maxUs: number;
  clientCpuUsPerCall: number;
  serverCpuUsPerCall: number;
  /** Node's RSS after the measured calls minus before them (MiB); near 0 means flat. */
  clientRssGrowthMiB: number;
  /** The highest RSS Node reached during the calls, above the RSS before them (MiB). */
  clientRssPeakOverMiB: number;
  /** The server's RSS after the measured calls minus before them (MiB). */
  serverRssGrowthMiB: number;
  /** The server's peak RSS (VmHWM) over its RSS before the calls (MiB). */
  serverRssPeakOverMiB: number;
}

function vmHwmMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

const samplesFor = (size: number, quick: boolean): { warmup: number; samples: number } => {
  if (quick) return { warmup: 1, samples: 3 };
  if (size <= 256 << 10) return { warmup: 50, samples: 300 };
  if (size <= 1 << 20) return { warmup: 20, samples: 100 };
  if (size <= 4 << 20) return { warmup: 5, samples: 30 };
  if (size <= 16 << 20) return { warmup: 3, samples: 12 };
  return { warmup: 2, samples: 6 };
};

/**
 * A full GC when Node runs with --expose-gc (npm run bench does): Node's RSS "growth" then counts
 * memory still held, not buffers a GC had not yet freed when the sample was taken.
 */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function roundTrips(path: LargePath, call: Call, size: number, pid: number, quick: boolean): Promise<LargeRow> {
  const { warmup, samples } = samplesFor(size, quick);
  const jsonSamples = path === "pyproc-style JSON" && size >= 16 << 20 ? Math.min(samples, 4) : samples;
  for (let i = 0; i < warmup; i++) await call();
  collectGarbage();
  const rss0 = process.memoryUsage.rss();
  const server0 = rssMiB(pid);
  let peak = rss0;
  const lat: number[] = [];
  const c0 = process.cpuUsage();
  const s0 = processCpuSeconds(pid);
  for (let i = 0; i < jsonSamples; i++) {
    const t = process.hrtime.bigint();
    await call();
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
    peak = Math.max(peak, process.memoryUsage.rss());
  }
  const c = process.cpuUsage(c0);
  const s = processCpuSeconds(pid) - s0;
  collectGarbage();
  const rss1 = process.memoryUsage.rss();
  lat.sort((a, b) => a - b);
  return {
    path,
    payload: size,
    calls: lat.length,
    p50us: lat[Math.floor(lat.length / 2)],
    minUs: lat[0],
    maxUs: lat[lat.length - 1],
    clientCpuUsPerCall: (c.user + c.system) / lat.length,
    serverCpuUsPerCall: (s / lat.length) * 1e6,
    clientRssGrowthMiB: (rss1 - rss0) / 2 ** 20,
    clientRssPeakOverMiB: (peak - rss0) / 2 ** 20,
    serverRssGrowthMiB: rssMiB(pid) - server0,
    serverRssPeakOverMiB: vmHwmMiB(pid) - server0,
  };
}

/** Measures every large-payload path at every size; each size's paths run back to back. */
export async function measureLarge(opts: { python: string; benchWorker: string; quick: boolean; log: (msg: string) => void }): Promise<LargeRow[]> {
  const sizes = opts.quick ? [65536, 1 << 20] : [65536, 256 << 10, 512 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20];
  const dir = mkdtempSync(join(tmpdir(), "pgbench-large-"));
  const rows: LargeRow[] = [];
  const poolWith = (sharedMemoryLane?: { thresholdBytes: number } | false): WorkerPool =>
    new WorkerPool({ workers: 1, python: opts.python, script: opts.benchWorker, logger: silentLogger, requestTimeoutMs: 600_000, ...(sharedMemoryLane === undefined ? {} : { sharedMemoryLane }) });
  const pool = poolWith();
  const everyMessage = poolWith({ thresholdBytes: 0 });
  const laneOff = poolWith(false);
  const pools = [pool, everyMessage, laneOff];
  const servers: PeerServer[] = [];
  try {
    await Promise.all(pools.map((p) => p.start()));
    const { bare, binary, json } = await startComparisonServers(opts.python, dir, servers);
    const viaPool = (p: WorkerPool, payload: Buffer): { call: Call; close: () => void; pid: number } => {
      const client = p.client(BenchServiceDefinition);
      return { call: () => client.echo({ payload }), close: () => undefined, pid: p.health().workers[0].pid as number };
    };
    for (const size of sizes) {
      const payload = Buffer.alloc(size, 7);
      for (const path of LARGE_PATHS) {
        opts.log(`large ${path} ${size} B`);
        let made: { call: Call; close: () => void; pid: number };
        switch (path) {
          case "procgrpc (default transport)":
            made = viaPool(pool, payload);
            break;
          case "procgrpc, lane for every message":
            made = viaPool(everyMessage, payload);
            break;
          case "procgrpc, sharedMemoryLane: false":
            made = viaPool(laneOff, payload);
            break;
          case "bare gRPC stream, 1 message per call":
            made = { ...(await bareStreamCall([bare.socket], payload)), pid: bare.pid };
            break;
          case "socket floor (binary)":
            made = { ...(await binaryPeerCall([binary.socket], payload)), pid: binary.pid };
            break;
          case "pyproc-style JSON":
            made = { ...(await jsonPeerCall([json.socket], payload)), pid: json.pid };
            break;
        }
        try {
          rows.push(await roundTrips(path, made.call, size, made.pid, opts.quick));
        } finally {
          made.close();
        }
      }
    }
  } finally {
    for (const s of servers) s.stop();
    await Promise.all(pools.map((p) => p.shutdown()));
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
