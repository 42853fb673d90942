import { resolve } from "node:path";
import type { Interceptor } from "../call/interceptor";
import { MAX_TIMER_MS } from "../core/deadline";
import { integerOption, numberOption } from "../core/option-checks";
import type { PoolResilienceOptions, ResilienceCallOptions } from "../resilience/pool-resilience";
import { resolveLaneOptions, type ResolvedLaneOptions, type SharedMemoryLaneOptions } from "../transport/lane-options";
import { resolveLogLevel, type Logger, type LogLevel } from "../core/logger";
import { resolveWatchOptions, type ResolvedWatchOptions, type WatchOptions } from "./reload-watcher";
import { resolveScaling, type ResolvedScaling, type WorkerScalingOptions } from "./scaling-options";
import { checkSlotResourceOptions, type PerSlot, type SlotResourceOptions } from "./slot-resources";

/** How to start and run a pool of Python workers. */
export interface WorkerPoolOptions extends PoolResilienceOptions {
  /**
   * Number of worker processes (a fixed pool), or `{ min, max, … }` to autoscale between a floor
   * and a ceiling (docs/supervision.md, "Autoscaling"). Default 1.
   */
  workers?: number | WorkerScalingOptions;
  /**
   * Warm spares: this many extra workers kept started and SERVING (health-checked) but out of
   * rotation. A worker that dies is replaced by a spare at once, and a scale-up takes spares
   * first; the slot that lost its process restarts as the new spare. Default 0.
   */
  spares?: number;
  /**
   * Python interpreter. Default `$PROCGRPC_PYTHON`, else `python3`. A bare name is looked up on
   * PATH; a relative path (e.g. `.venv/bin/python`) resolves against `cwd`.
   */
  python?: string;
  /** Worker entry point as a script path (`python <script>`), relative to `cwd`. Give `script` or `module`. */
  script?: string;
  /** Worker entry point as a module (`python -m <module>`). Give `script` or `module`. */
  module?: string;
  /**
   * Extra command-line arguments for the worker; or a function of the slot (`{ index, id }`),
   * called once per slot, so every process of a slot gets the same arguments.
   */
  args?: PerSlot<readonly string[]>;
  /**
   * Extra environment for the workers (added to the Node process's environment); or a function
   * of the slot, e.g. `(slot) => ({ CUDA_VISIBLE_DEVICES: String(slot.index % gpus) })`, called
   * once per slot: the same across its restarts and recycles.
   */
  env?: PerSlot<Readonly<Record<string, string>>>;
  /**
   * CPUs to pin each worker to, e.g. `(slot) => [slot.index]`, applied in the worker at start
   * with `os.sched_setaffinity` (to all its threads). Where that is not available (macOS, or
   * `PROCGRPC_PORTABLE=1`) it is ignored with one warning. Default: no pinning.
   */
  cpuAffinity?: PerSlot<readonly number[] | undefined>;
  /**
   * Working directory of the workers, and the base of a relative `python` and `script`.
   * Default: the Node process's (`process.cwd()` when the pool is constructed).
   */
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
  /** Where the pool logs, and where worker log lines are re-emitted. Default: JSON lines on stderr at `logLevel`. */
  logger?: Logger;
  /**
   * Level of the default logger (ignored when `logger` is given: its own level counts). Default
   * `$PROCGRPC_LOG_LEVEL`, else `"warn"`: a healthy pool and its workers write nothing; worker
   * starts, stops and restarts show at `"info"`. Workers get the level too (as
   * `PROCGRPC_LOG_LEVEL`, at most `"warn"`) and write no line below it.
   */
  logLevel?: LogLevel;
  /** Interceptors around every call of every kind, of every client of this pool (outermost first). */
  middleware?: readonly Interceptor<ResilienceCallOptions>[];
  /**
   * Interceptors around every attempt: inside the built-in retry, hedging and circuit breakers,
   * right before the pool picks a worker (e.g. `tracing.attempt`, one span per attempt).
   */
  attemptMiddleware?: readonly Interceptor<ResilienceCallOptions>[];
  /**
   * How unary calls travel to a worker: `"unary"`, each call its own HTTP/2 stream (plain gRPC),
   * or `"pipelined"`, calls multiplexed in batches on one long-lived stream per worker (same
   * semantics, several times the throughput and half the latency for small calls; see
   * docs/benchmarks.md). Default `"pipelined"`.
   */
  transport?: "unary" | "pipelined";
  /**
   * With `transport: "pipelined"`, larger requests take their own HTTP/2 stream (unless they take
   * the shared-memory lane). Default 131072 on the socket pair, 65536 with
   * `pipelineCarrier: "grpc-stream"` (measured crossovers, docs/worker-protocol.md).
   */
  pipelineMaxRequestBytes?: number;
  /**
   * With `transport: "pipelined"`, what carries each worker's pipeline: `"socket-pair"`, a socket
   * pair the worker is spawned with, each batch one length-prefixed frame (no HTTP/2 under small
   * calls; docs/pipelined-call-costs.md), or `"grpc-stream"`, one long-lived gRPC bidirectional
   * stream on the worker's socket. Same calls, statuses, metadata, deadlines and cancellation
   * either way (the conformance suite compares them). A worker of an older procgrpc that does not
   * serve the socket pair gets the gRPC stream. Default `"socket-pair"`.
   */
  pipelineCarrier?: "socket-pair" | "grpc-stream";
  /**
   * With `transport: "pipelined"`, unary requests and responses, and stream responses, of at
   * least `thresholdBytes` (default 256 KiB) travel as files in a private directory on
   * `/dev/shm` instead of through HTTP/2 (docs/shared-memory-lane.md). On by default; `false`
   * turns it off.
   */
  sharedMemoryLane?: SharedMemoryLaneOptions | false;
  /** How often each worker is asked grpc.health.v1 `Check`. Default 1000. */
  healthCheckIntervalMs?: number;
  /** Deadline of one health check. Default: `healthCheckIntervalMs`, at most 1000. */
  healthCheckTimeoutMs?: number;
  /** Failed or timed-out checks in a row after which a worker is `unhealthy`. Default 3. */
  unhealthyAfterMisses?: number;
  /** How long a worker may stay `unhealthy` (NOT_SERVING or missing checks) before it is replaced. Default 10000. */
  replaceUnhealthyAfterMs?: number;
  /** Respawn backoff and crash-loop detection for workers that exit unexpectedly. */
  restart?: RestartOptions;
  /** After a call is cancelled (deadline or signal), how long its handler may keep running before the worker is replaced. Default 2000. */
  cancelGraceMs?: number;
  /** Any call running longer than this gets its worker replaced, whatever its deadline. Default 0 (off). */
  hardTimeoutMs?: number;
  /** Recycle a worker after about this many calls (minus up to `recycleJitter`). Default 0 (off). */
  maxRequestsPerWorker?: number;
  /** Recycle a worker whose resident memory exceeds this many MB (checked with each health check). Default 0 (off). */
  maxMemoryMb?: number;
  /** Fraction by which each worker's `maxRequestsPerWorker` is randomly lowered, so workers do not recycle together. Default 0.1. */
  recycleJitter?: number;
  /** Shut the pool down gracefully on SIGINT/SIGTERM of the Node process, then re-raise the signal. Default false. */
  handleSignals?: boolean;
  /**
   * Development: when the worker's Python files change, replace the workers one at a time (each
   * new one SERVING before the old one drains; a new one that fails to start leaves the old ones
   * serving). `true` watches `.py` files under the directory of `script` or of the module's
   * source. Default false. See docs/supervision.md.
   */
  watch?: boolean | WatchOptions;
}

/** Respawn policy (docs/supervision.md): exponential backoff with jitter, and crash-loop detection. */
export interface RestartOptions {
  /** Backoff before the first restart. Default 50. */
  initialDelayMs?: number;
  /** Backoff cap; also the retry interval of a `failed` worker. Default 5000. */
  maxDelayMs?: number;
  /** Backoff growth per restart within `windowMs`. Default 2. */
  multiplier?: number;
  /** More restarts than this within `windowMs` marks the worker `failed` (and emits `degraded`). Default 5. */
  maxRestarts?: number;
  /** The crash-loop window. Default 60000. */
  windowMs?: number;
}

/** `RestartOptions` with defaults filled in. */
export type ResolvedRestartOptions = Required<RestartOptions>;

/** `WorkerPoolOptions` with every default filled in. */
export interface ResolvedPoolOptions {
  /** Workers started by `start()` (the fixed count, or `scaling.min`). */
  workers: number;
  scaling: ResolvedScaling;
  spares: number;
  /** The per-slot options as given (functions are called once per slot). */
  resources: SlotResourceOptions;
  python: string;
  entry: { script: string } | { module: string };
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd: string;
  socketDir: string | undefined;
  startTimeoutMs: number;
  maxInFlightPerWorker: number;
  maxQueue: number;
  waitForReadyMs: number;
  requestTimeoutMs: number;
  transport: "unary" | "pipelined";
  pipelineMaxRequestBytes: number;
  pipelineCarrier: "socket-pair" | "grpc-stream";
  /** Undefined when the lane is off. */
  sharedMemoryLane: ResolvedLaneOptions | undefined;
  shutdownGraceMs: number;
  killTimeoutMs: number;
  healthCheckIntervalMs: number;
  healthCheckTimeoutMs: number;
  unhealthyAfterMisses: number;
  replaceUnhealthyAfterMs: number;
  restart: ResolvedRestartOptions;
  cancelGraceMs: number;
  hardTimeoutMs: number;
  maxRequestsPerWorker: number;
  maxMemoryMb: number;
  recycleJitter: number;
  handleSignals: boolean;
  watch: ResolvedWatchOptions | undefined;
  logLevel: LogLevel;
}

const OWNER = "WorkerPool";
const int = (name: string, value: number | undefined, fallback: number, min = 1, max = Infinity): number => integerOption(OWNER, name, value, fallback, { min, max });

function resolveRestart(given: RestartOptions | undefined): ResolvedRestartOptions {
  const r = given ?? {};
  const initialDelayMs = int("restart.initialDelayMs", r.initialDelayMs, 50, 0, MAX_TIMER_MS);
  const maxDelayMs = int("restart.maxDelayMs", r.maxDelayMs, Math.max(5000, initialDelayMs), 0, MAX_TIMER_MS);
  if (maxDelayMs < initialDelayMs) {
    throw new RangeError(`WorkerPool: restart.maxDelayMs (${maxDelayMs}) must be >= restart.initialDelayMs (${initialDelayMs})`);
  }
  return {
    initialDelayMs,
    maxDelayMs,
    multiplier: numberOption(OWNER, "restart.multiplier", r.multiplier, 2, { min: 1 }),
    maxRestarts: int("restart.maxRestarts", r.maxRestarts, 5, 0),
    windowMs: int("restart.windowMs", r.windowMs, 60_000, 1),
  };
}

/** Validates options and fills in defaults; throws a TypeError naming the bad option. */
export function resolvePoolOptions(options: WorkerPoolOptions): ResolvedPoolOptions {
  if (typeof options !== "object" || options === null) throw new TypeError("WorkerPool: options object is required");
  if (!options.script === !options.module) {
    throw new TypeError("WorkerPool: give exactly one of `script` (a path) or `module` (for python -m)");
  }
  const healthCheckIntervalMs = int("healthCheckIntervalMs", options.healthCheckIntervalMs, 1000, 10, MAX_TIMER_MS);
  // Paths are fixed now, like a shell in the workers' directory would resolve them, so errors
  // and `procgrpc serve` output name the file actually tried.
  const cwd = resolve(options.cwd ?? process.cwd());
  const python = options.python ?? process.env.PROCGRPC_PYTHON ?? "python3";
  const scaling = resolveScaling(options.workers);
  const resources: SlotResourceOptions = { env: options.env, args: options.args, cpuAffinity: options.cpuAffinity };
  const pipelineCarrier = carrierOf(options.pipelineCarrier);
  checkSlotResourceOptions(resources);
  return {
    workers: scaling.min,
    scaling,
    spares: int("spares", options.spares, 0, 0),
    resources,
    python: python.includes("/") ? resolve(cwd, python) : python,
    entry: options.script ? { script: resolve(cwd, options.script) } : { module: options.module as string },
    // The static parts (a function's results are per slot: `resources`).
    args: typeof options.args === "function" ? [] : (options.args ?? []),
    env: typeof options.env === "function" ? {} : (options.env ?? {}),
    cwd,
    socketDir: options.socketDir,
    startTimeoutMs: int("startTimeoutMs", options.startTimeoutMs, 30_000, 1, MAX_TIMER_MS),
    maxInFlightPerWorker: int("maxInFlightPerWorker", options.maxInFlightPerWorker, 32),
    maxQueue: int("maxQueue", options.maxQueue, 1000, 0),
    waitForReadyMs: int("waitForReadyMs", options.waitForReadyMs, 1000, 0, MAX_TIMER_MS),
    requestTimeoutMs: int("requestTimeoutMs", options.requestTimeoutMs, 30_000, 1, MAX_TIMER_MS),
    transport: transportOf(options.transport),
    pipelineMaxRequestBytes: int("pipelineMaxRequestBytes", options.pipelineMaxRequestBytes, pipelineCarrier === "socket-pair" ? 128 * 1024 : 64 * 1024, 0),
    pipelineCarrier,
    sharedMemoryLane: resolveLaneOptions(options.sharedMemoryLane),
    shutdownGraceMs: int("shutdownGraceMs", options.shutdownGraceMs, 5000, 0, MAX_TIMER_MS),
    killTimeoutMs: int("killTimeoutMs", options.killTimeoutMs, 3000, 1, MAX_TIMER_MS),
    healthCheckIntervalMs,
    healthCheckTimeoutMs: int("healthCheckTimeoutMs", options.healthCheckTimeoutMs, Math.min(1000, healthCheckIntervalMs), 1, MAX_TIMER_MS),
    unhealthyAfterMisses: int("unhealthyAfterMisses", options.unhealthyAfterMisses, 3),
    replaceUnhealthyAfterMs: int("replaceUnhealthyAfterMs", options.replaceUnhealthyAfterMs, 10_000, 0, MAX_TIMER_MS),
    restart: resolveRestart(options.restart),
    cancelGraceMs: int("cancelGraceMs", options.cancelGraceMs, 2000, 0, MAX_TIMER_MS),
    hardTimeoutMs: int("hardTimeoutMs", options.hardTimeoutMs, 0, 0, MAX_TIMER_MS),
    maxRequestsPerWorker: int("maxRequestsPerWorker", options.maxRequestsPerWorker, 0, 0),
    maxMemoryMb: numberOption(OWNER, "maxMemoryMb", options.maxMemoryMb, 0),
    recycleJitter: numberOption(OWNER, "recycleJitter", options.recycleJitter, 0.1, { max: 0.9 }),
    handleSignals: options.handleSignals === true,
    watch: resolveWatchOptions(options.watch),
    logLevel: resolveLogLevel(OWNER, options.logLevel),
  };
}

function carrierOf(value: unknown): "socket-pair" | "grpc-stream" {
  if (value === undefined || value === "socket-pair" || value === "grpc-stream") return value ?? "socket-pair";
  throw new TypeError(`WorkerPool: pipelineCarrier must be "socket-pair" or "grpc-stream", got ${JSON.stringify(value)}`);
}

function transportOf(value: unknown): "unary" | "pipelined" {
  if (value === undefined || value === "unary" || value === "pipelined") return value ?? "pipelined";
  throw new TypeError(`WorkerPool: transport must be "unary" or "pipelined", got ${JSON.stringify(value)}`);
}
