// Measurement primitives for bench/: sequential latency, throughput at a concurrency, and CPU
// per call on both sides (this process via process.cpuUsage, workers via /proc/<pid>/stat).
import { readFileSync } from "node:fs";

/** One way of making a call; resolves with nothing, rejects on any failure. */
export type Call = () => Promise<unknown>;

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat (utime, stime), counted from after the command name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100; // CLK_TCK is 100 on Linux
}

/** Resident memory of a process in MiB, from /proc/<pid>/status. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Figures for one measured run. */
export interface RunFigures {
  calls: number;
  p50us: number;
  p99us: number;
  callsPerSec: number;
  clientCpuUsPerCall: number;
  serverCpuUsPerCall: number;
}

function cpuWindow(serverPids: readonly number[]): () => { client: number; server: number } {
  const c0 = process.cpuUsage();
  const s0 = serverPids.reduce((n, pid) => n + processCpuSeconds(pid), 0);
  return () => {
    const c = process.cpuUsage(c0);
    const s = serverPids.reduce((n, pid) => n + processCpuSeconds(pid), 0) - s0;
    return { client: (c.user + c.system) / 1e6, server: s };
  };
}

/** Warm-up, then `samples` sequential calls: latency percentiles and CPU per call. */
export async function sequential(call: Call, warmup: number, samples: number, serverPids: readonly number[]): Promise<RunFigures> {
  for (let i = 0; i < warmup; i++) await call();
  const lat: number[] = new Array<number>(samples);
  const cpu = cpuWindow(serverPids);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < samples; i++) {
    const t = process.hrtime.bigint();
    await call();
    lat[i] = Number(process.hrtime.bigint() - t) / 1000;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const used = cpu();
  lat.sort((a, b) => a - b);
  return {
    calls: samples,
    p50us: percentile(lat, 0.5),
    p99us: percentile(lat, 0.99),
    callsPerSec: samples / seconds,
    clientCpuUsPerCall: (used.client / samples) * 1e6,
    serverCpuUsPerCall: (used.server / samples) * 1e6,
  };
}

/** `concurrency` callers loop for `seconds`: throughput, latency percentiles and CPU per call. */
export async function throughput(call: Call, concurrency: number, seconds: number, serverPids: readonly number[]): Promise<RunFigures> {
  const lat: number[] = [];
  const until = Date.now() + seconds * 1000;
  const cpu = cpuWindow(serverPids);
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const t = process.hrtime.bigint();
        await call();
        lat.push(Number(process.hrtime.bigint() - t) / 1000);
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const used = cpu();
  lat.sort((a, b) => a - b);
  return {
    calls: lat.length,
    p50us: percentile(lat, 0.5),
    p99us: percentile(lat, 0.99),
    callsPerSec: lat.length / elapsed,
    clientCpuUsPerCall: (used.client / lat.length) * 1e6,
    serverCpuUsPerCall: (used.server / lat.length) * 1e6,
  };
}

/** Median of a few numbers. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
