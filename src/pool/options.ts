import type { UnaryMiddleware } from "../client/middleware";
import type { Logger } from "./logger";

/** How to start and run a pool of Python workers. */
export interface WorkerPoolOptions {
  /** Number of worker processes. Default 1. */
  workers?: number;
  /** Python interpreter. Default `$PROCGRPC_PYTHON`, else `python3`. */
  python?: string;
  /** Worker entry point as a script path (`python <script>`). Give `script` or `module`. */
  script?: string;
  /** Worker entry point as a module (`python -m <module>`). Give `script` or `module`. */
  module?: string;
  /** Extra command-line arguments for the worker. */
  args?: readonly string[];
  /** Extra environment for the workers (added to the Node process's environment). */
  env?: Readonly<Record<string, string>>;
  /** Working directory of the workers. Default: the Node process's. */
  cwd?: string;
  /**
   * Directory for the workers' Unix sockets. Default: a fresh private directory (mode 0700) in
   * the OS temp dir, removed at shutdown. A given directory is kept, but stale procgrpc sockets in it are cleaned.
   */
  socketDir?: string;
  /** How long a worker may take from spawn to answering health SERVING. Default 30000. */
  startTimeoutMs?: number;
  /** Most calls one worker serves at a time; the Python server gets the same limit. Default 32. */
  maxInFlightPerWorker?: number;
  /** Most calls waiting for a free worker; beyond it calls fail with RESOURCE_EXHAUSTED. Default 1000. */
  maxQueue?: number;
  /** How long a call waits for a worker when none is ready. Default 1000. */
  waitForReadyMs?: number;
  /** Deadline for any call that sets no shorter one (`timeoutKind: "transport"`). Default 30000. */
  requestTimeoutMs?: number;
  /** How long `shutdown()` lets in-flight calls finish before stopping workers. Default 5000. */
  shutdownGraceMs?: number;
  /** After SIGTERM, how long a worker has to exit before SIGKILL. Default 3000. */
  killTimeoutMs?: number;
  /** Where the pool logs, and where worker log lines are re-emitted. Default: JSON lines on stderr at info. */
  logger?: Logger;
  /** Middleware around every call of every client of this pool (outermost first). */
  middleware?: readonly UnaryMiddleware[];
}

/** `WorkerPoolOptions` with every default filled in. */
export interface ResolvedPoolOptions {
  workers: number;
  python: string;
  entry: { script: string } | { module: string };
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd: string | undefined;
  socketDir: string | undefined;
  startTimeoutMs: number;
  maxInFlightPerWorker: number;
  maxQueue: number;
  waitForReadyMs: number;
  requestTimeoutMs: number;
  shutdownGraceMs: number;
  killTimeoutMs: number;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw new TypeError(`WorkerPool: ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return v;
}

/** Validates options and fills in defaults; throws a TypeError naming the bad option. */
export function resolvePoolOptions(options: WorkerPoolOptions): ResolvedPoolOptions {
  if (typeof options !== "object" || options === null) throw new TypeError("WorkerPool: options object is required");
  if (!options.script === !options.module) {
    throw new TypeError("WorkerPool: give exactly one of `script` (a path) or `module` (for python -m)");
  }
  return {
    workers: positiveInt("workers", options.workers, 1),
    python: options.python ?? process.env.PROCGRPC_PYTHON ?? "python3",
    entry: options.script ? { script: options.script } : { module: options.module as string },
    args: options.args ?? [],
    env: options.env ?? {},
    cwd: options.cwd,
    socketDir: options.socketDir,
    startTimeoutMs: positiveInt("startTimeoutMs", options.startTimeoutMs, 30_000),
    maxInFlightPerWorker: positiveInt("maxInFlightPerWorker", options.maxInFlightPerWorker, 32),
    maxQueue: positiveInt("maxQueue", options.maxQueue, 1000, 0),
    waitForReadyMs: positiveInt("waitForReadyMs", options.waitForReadyMs, 1000, 0),
    requestTimeoutMs: positiveInt("requestTimeoutMs", options.requestTimeoutMs, 30_000),
    shutdownGraceMs: positiveInt("shutdownGraceMs", options.shutdownGraceMs, 5000, 0),
    killTimeoutMs: positiveInt("killTimeoutMs", options.killTimeoutMs, 3000),
  };
}
