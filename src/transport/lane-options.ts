import { statfsSync } from "node:fs";
import type { Logger } from "../core/logger";
import { PipeLane } from "./lane-pipe";
import { SharedMemoryLane, sweepStaleLaneDirs } from "./shared-memory-lane";

/**
 * `WorkerPoolOptions.sharedMemoryLane`: large unary messages on the pipelined transport travel
 * as files in a private memory-backed directory instead of through HTTP/2 (docs/shared-memory-lane.md).
 * On by default; `false` turns it off.
 */
export interface SharedMemoryLaneOptions {
  /** Serialized requests and responses of at least this many bytes take the lane. Default 256 KiB (the measured crossover: docs/shared-memory-lane.md §6). */
  thresholdBytes?: number;
  /**
   * Where the pool creates its private 0700 lane directory. Default `/dev/shm` when it exists,
   * else the pool's socket directory.
   */
  directory?: string;
  /**
   * Bytes that must stay free in the directory's filesystem after a lane write; a message that
   * would leave less goes over the socket (with one warning). Default 10 % of the filesystem.
   */
  reserveBytes?: number;
}

/** The lane settings after defaults; undefined when the lane is off. */
export interface ResolvedLaneOptions {
  readonly thresholdBytes: number;
  readonly directory: string | undefined;
  readonly reserveBytes: number | undefined;
}

/** The default threshold: the crossover measured in docs/shared-memory-lane.md and docs/benchmarks.md. */
export const DEFAULT_LANE_THRESHOLD_BYTES = 256 * 1024;

/** Validates `sharedMemoryLane` (a `TypeError` naming the bad field); undefined when it is `false`. */
export function resolveLaneOptions(value: SharedMemoryLaneOptions | false | undefined): ResolvedLaneOptions | undefined {
  if (value === false) return undefined;
  if (value !== undefined && (typeof value !== "object" || value === null)) throw new TypeError(`WorkerPool: sharedMemoryLane must be an object or false, got ${String(value)}`);
  const v = value ?? {};
  const count = (name: string, n: number | undefined): number | undefined => {
    if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) throw new TypeError(`WorkerPool: sharedMemoryLane.${name} must be a non-negative integer, got ${String(n)}`);
    return n;
  };
  if (v.directory !== undefined && (typeof v.directory !== "string" || v.directory === "")) throw new TypeError("WorkerPool: sharedMemoryLane.directory must be a non-empty string");
  return { thresholdBytes: count("thresholdBytes", v.thresholdBytes) ?? DEFAULT_LANE_THRESHOLD_BYTES, directory: v.directory, reserveBytes: count("reserveBytes", v.reserveBytes) };
}

/**
 * Opens a pool's lane at start: first removes the lane directories of pools whose Node process
 * died (under the base directory and the fallback), then creates this pool's. A lane that
 * cannot be created is not an error: the pool logs a warning and sends everything over the socket.
 */
export function openPoolLane(options: ResolvedLaneOptions, socketDir: string, logger: Logger): PipeLane | undefined {
  const base = options.directory ?? "/dev/shm";
  sweepStaleLaneDirs(base);
  sweepStaleLaneDirs(socketDir);
  let lane: SharedMemoryLane;
  try {
    lane = SharedMemoryLane.open({ baseDir: base, fallbackDir: socketDir, writerPrefix: "n" });
  } catch (err) {
    logger.warn({ err: (err as Error).message }, "shared-memory lane: no lane directory; large messages go over the socket");
    return undefined;
  }
  let reserve = options.reserveBytes;
  if (reserve === undefined) {
    try {
      const s = statfsSync(lane.dir);
      reserve = Math.floor((Number(s.blocks) * Number(s.bsize)) / 10);
    } catch {
      reserve = 0;
    }
  }
  return new PipeLane(lane, { thresholdBytes: options.thresholdBytes, reserveBytes: reserve }, logger);
}
