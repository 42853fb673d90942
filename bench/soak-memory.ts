// Memory of the soak's Node process, sampled so that growth can be attributed:
// - resident memory as the kernel sees it (VmRSS, split into anonymous and file-backed pages);
// - V8's heap in use after a full GC, and what V8 holds beyond it: a plain full GC keeps freed
//   heap pages pooled for reuse (under the soak's allocation rate that is ~150-190 MB of RSS),
//   only a memory-reducing ("last resort") GC returns them. The resident memory left after that
//   GC is the live memory: a leak grows there, retention only above it;
// - Buffers and other memory outside the V8 heap (`external`);
// - live objects that exist once per worker process and must go with it (test/helpers/
//   live-objects.ts: WorkerProcess, Pipeline, grpc-js channels, http2 sessions, …); counting
//   costs a full GC per class, so it is done at the start and the end only.
import { readFileSync } from "node:fs";
import { liveObjectCounts } from "../test/helpers/live-objects";

/** One sample; sizes in MB (one decimal). */
export interface MemorySample {
  /** Seconds since the baseline. */
  at: number;
  /** How long the sample blocked the event loop (its GCs), ms. */
  tookMs: number;
  rss: number;
  /** Resident anonymous pages (malloc, V8's heap, Buffers). */
  anonymous: number;
  /** V8 heap in use after a full GC, and committed by V8 (`heapTotal`). */
  heapUsed: number;
  heapCommitted: number;
  /** Buffers and other memory outside the V8 heap. */
  external: number;
  /** After a memory-reducing GC: resident memory (the live memory) and its anonymous part. */
  live: { rss: number; anonymous: number };
  /** Live instances per class (when counted). */
  objects?: Record<string, number>;
}

const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;

/** A line of /proc/self/status in MB (e.g. RssAnon); NaN off Linux. */
function statusMb(field: string): number {
  let status = "";
  try {
    status = readFileSync("/proc/self/status", "utf8");
  } catch {
    // Not Linux.
  }
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? mb(Number(match[1]) * 1024) : NaN;
}

type GcOptions = { type: "major"; execution: "sync"; flavor: "last-resort" };

/**
 * Takes a sample: a full GC (heapUsed is what is live), the object counts if asked, then a
 * memory-reducing GC for `live`. Needs --expose-gc (`npm run soak` passes it); Node 24's V8
 * takes the `flavor` option.
 */
export function sampleMemory(sinceMs: number, countObjects: boolean): MemorySample {
  const began = performance.now();
  const gc = global.gc as unknown as ((options?: GcOptions) => void) | undefined;
  gc?.();
  const usage = process.memoryUsage();
  const anonymous = statusMb("RssAnon");
  const objects = countObjects ? liveObjectCounts() : undefined;
  gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
  const live = { rss: mb(process.memoryUsage.rss()), anonymous: statusMb("RssAnon") };
  return {
    at: Math.round((Date.now() - sinceMs) / 1000),
    tookMs: Math.round(performance.now() - began),
    rss: mb(usage.rss),
    anonymous,
    heapUsed: mb(usage.heapUsed),
    heapCommitted: mb(usage.heapTotal),
    external: mb(usage.external),
    live,
    objects,
  };
}

/** Least-squares slope of `value` over the samples' `at`, MB per minute (NaN below 3 samples). */
export function slopePerMinute(samples: readonly MemorySample[], value: (s: MemorySample) => number): number {
  if (samples.length < 3) return NaN;
  const xs = samples.map((s) => s.at / 60);
  const ys = samples.map(value);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? NaN : Math.round((num / den) * 100) / 100;
}

/** Counts above `limit` (one per worker process, plus one being replaced), as "name: n". */
export function objectsOver(objects: Record<string, number> | undefined, limit: number): string[] {
  return Object.entries(objects ?? {})
    .filter(([, n]) => n > limit)
    .map(([name, n]) => `${name}: ${n}`);
}
