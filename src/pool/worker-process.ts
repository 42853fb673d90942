import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, unlinkSync } from "node:fs";
import type { Duplex, Readable } from "node:stream";
import type { ChannelOptions, Client } from "@grpc/grpc-js";
import { grpcJs } from "../core/grpc-js";
import type { PipeLane } from "../transport/lane-pipe";
import { WorkerStartError } from "./worker-start-error";
import { checkHealth } from "../transport/health-check";
import { forEachLine } from "./line-splitter";
import type { Logger } from "../core/logger";
import type { ResolvedPoolOptions } from "./options";
import type { SlotResources } from "./slot-resources";
import { describeExit, type WorkerCall } from "../transport/call-target";
import type { WorkerExit, WorkerState } from "./worker-state";

const STDERR_TAIL_LINES = 40;
/** The fd on which the worker reports readiness and, by its EOF, learns that this process died. */
const CONTROL_FD = 3;
/** The fd of the socket pair on which the worker serves the pipelined transport (`SocketPipeStream`). */
const PIPE_FD = 4;
/**
 * After the process exited, how long its stdio may stay open (held by a descendant that left
 * its process group) before the pool stops reading it. Start errors wait up to this for the
 * complete stderr tail; nothing else waits for stdio.
 */
const OUTPUT_AFTER_EXIT_MS = 1000;
/** The worker's exit code when its socket path is another live server's (never unlink it then). */
const EXIT_SOCKET_IN_USE = 3;

/**
 * procgrpc's own control variables: a local worker never inherits them from the Node process's
 * environment (the pool sets those it needs), only from the pool's `env` option. A
 * `PROCGRPC_LISTEN` exported for a remote worker, say, must not make local workers listen on TCP.
 */
export const CONTROL_VARIABLES: readonly string[] = [
  "PROCGRPC_SOCKET",
  "PROCGRPC_WORKER_ID",
  "PROCGRPC_CONTROL_FD",
  "PROCGRPC_PIPE_FD",
  "PROCGRPC_MAX_CONCURRENCY",
  "PROCGRPC_GRACE_SECONDS",
  "PROCGRPC_SOCKET_DIR_OWNED",
  "PROCGRPC_PROCESS_GROUP",
  "PROCGRPC_LOG_LEVEL",
  "PROCGRPC_LISTEN",
  "PROCGRPC_HEALTH_LISTEN",
  "PROCGRPC_ALLOW_PLAINTEXT",
  "PROCGRPC_TLS_CERT",
  "PROCGRPC_TLS_KEY",
  "PROCGRPC_TLS_CLIENT_CA",
  "PROCGRPC_TOKEN",
  "PROCGRPC_TOKEN_FILE",
  "PROCGRPC_CPU_AFFINITY",
  "PROCGRPC_CONTROL_TOKEN",
  "PROCGRPC_SWITCHED_OFF",
  "PROCGRPC_SWITCHED_OFF_GENERATION",
];

/**
 * The worker's drain grace after SIGTERM: shorter than `killTimeoutMs` by a margin (half of it,
 * at most 1 s) in which a worker that used its whole grace ends its remaining calls itself
 * (UNAVAILABLE "worker is shutting down") and exits, before the pool's SIGKILL.
 */
export function workerDrainGraceMs(killTimeoutMs: number): number {
  return killTimeoutMs - Math.min(1000, killTimeoutMs / 2);
}

/**
 * The level a worker writes its own log lines at, from the pool's logger (`level` of pino and
 * of `jsonLogger`): nothing below what the pool would drop, but always `warn` and above, which
 * also feed the stderr tail of start errors and `workerExit`. Undefined for a logger without a
 * recognisable level (the worker then uses its own default).
 */
export function workerLogLevel(logger: Logger): "debug" | "info" | "warn" | undefined {
  const level = (logger as { level?: unknown }).level;
  switch (level) {
    case "trace":
    case "debug":
      return "debug";
    case "info":
      return "info";
    case "warn":
    case "error":
    case "fatal":
    case "silent":
      return "warn";
    default:
      return undefined;
  }
}

/** The environment of a local worker: the Node process's without procgrpc's control variables. */
function inheritedEnvironment(): NodeJS.ProcessEnv {
  const inherited: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CONTROL_VARIABLES) delete inherited[name];
  return inherited;
}

/** Sends `signal` to the worker's whole process group (it leads its own: spawned detached). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: nothing is left in the group.
  }
}

/**
 * Channel options for a local Unix socket: no grpc-js retries (procgrpc has its own), no channelz,
 * unlimited message sizes (the worker is trusted), and short reconnect backoff.
 */
export const LOCAL_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.enable_retries": 0,
  "grpc.enable_channelz": 0,
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
  "grpc.initial_reconnect_backoff_ms": 50,
  "grpc.max_reconnect_backoff_ms": 250,
  "grpc.use_local_subchannel_pool": 1,
  // A 4 MiB receive window instead of HTTP/2's 64 KiB: large responses need far fewer
  // WINDOW_UPDATE round trips (measured: 64 KiB echo p50 ~2.0 → ~1.0 ms). Streams stay bounded.
  "grpc-node.flow_control_window": 4 * 1024 * 1024,
};

export type { WorkerCall } from "../transport/call-target";

/** One Python worker process: its spawn, readiness, channel, in-flight calls and exit. */
export class WorkerProcess {
  private stateValue: WorkerState = "starting";
  private stateListener: ((from: WorkerState, to: WorkerState) => void) | undefined;
  /** Calls running on this worker now. */
  inFlight = 0;
  /** Calls this worker has finished (successfully or not). */
  served = 0;
  /** The gRPC channel to this worker; set once it has reported ready. */
  channel: Client | undefined;
  /** The socket pair the worker serves the pipeline on, until a pipeline takes it (`takePipeSocket`). */
  private pipeSocket: Duplex | undefined;
  /** A pipeline reads the socket pair (so its end closes it); otherwise the exit must. */
  private pipeSocketTaken = false;
  /** The pool's shared-memory lane, which this worker's stream calls use (undefined: none). */
  lane: PipeLane | undefined;
  /** How the process ended, once it has. */
  exit: WorkerExit | undefined;
  /** Calls to fail at once should the process die. */
  readonly calls = new Set<WorkerCall>();
  private child: ChildProcess | undefined;
  private readonly stderrTail: string[] = [];
  private readonly exited: Promise<WorkerExit>;
  private resolveExited!: (exit: WorkerExit) => void;
  /** Resolves when the worker's stdio closed, or `OUTPUT_AFTER_EXIT_MS` after its exit. */
  private readonly outputDone: Promise<void>;
  private resolveOutputDone!: () => void;
  private exitListener: ((exit: WorkerExit) => void) | undefined;
  /** `stop()` was called: the worker is stopping in order, and SIGKILL waits for `killTimeoutMs`. */
  private stopRequested = false;

  constructor(
    readonly id: string,
    readonly socketPath: string,
    private readonly options: ResolvedPoolOptions,
    private readonly logger: Logger,
    /** The pool created the socket directory: the last worker removes it if this process dies. */
    private readonly socketDirOwned: boolean,
    /** The slot's own environment, arguments and CPU set (default: the pool's static `env` and `args`). */
    private readonly resources: SlotResources = { env: options.env, args: options.args, cpuAffinity: undefined },
    /**
     * Runs once the worker is SERVING and before it is `ready` (takes calls): the pool puts its
     * kill switches in force there. A rejection fails the start.
     */
    private readonly prepare?: (worker: WorkerProcess, deadline: Date) => Promise<void>,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    this.outputDone = new Promise((resolve) => (this.resolveOutputDone = resolve));
  }

  /** Current lifecycle state (docs/supervision.md); every change is reported to the state listener. */
  get state(): WorkerState {
    return this.stateValue;
  }

  set state(to: WorkerState) {
    const from = this.stateValue;
    if (from === to) return;
    this.stateValue = to;
    this.stateListener?.(from, to);
  }

  /** True once the pool is stopping this process or it is gone: a call it cuts off lost its connection. */
  get stopping(): boolean {
    return this.exit !== undefined || this.stateValue === "draining" || this.stateValue === "stopped";
  }

  /** Registers the one listener told of every state change. */
  onStateChange(listener: (from: WorkerState, to: WorkerState) => void): void {
    this.stateListener = listener;
  }

  /** The OS process id, once spawned. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The command line, for error messages. */
  get command(): string {
    const entry = "script" in this.options.entry ? [this.options.entry.script] : ["-m", this.options.entry.module];
    return [this.options.python, ...entry, ...this.resources.args].join(" ");
  }

  /** Last lines of stderr, oldest first. */
  get stderr(): readonly string[] {
    return this.stderrTail;
  }

  /** Registers the one listener called when the process exits (after `start()` resolved or not). */
  onExit(listener: (exit: WorkerExit) => void): void {
    this.exitListener = listener;
  }

  /** Spawns the process and resolves once it answers grpc.health.v1 Check with SERVING. */
  async start(): Promise<void> {
    const { python, entry, cwd, startTimeoutMs, maxInFlightPerWorker } = this.options;
    const { env, args, cpuAffinity } = this.resources;
    const argv = "script" in entry ? [entry.script, ...args] : ["-m", entry.module, ...args];
    const startedAt = Date.now();
    const fail = (reason: string, cause?: unknown): WorkerStartError =>
      new WorkerStartError({
        workerId: this.id,
        command: this.command,
        reason,
        stderrTail: this.stderrTail,
        exitCode: this.exit?.code,
        signal: this.exit?.signal,
        cause,
      });

    const logLevel = workerLogLevel(this.logger);
    let child: ChildProcess;
    try {
      child = spawn(python, argv, {
        cwd,
        env: {
          ...inheritedEnvironment(),
          ...(logLevel ? { PROCGRPC_LOG_LEVEL: logLevel } : {}),
          // The user's own variables, procgrpc's control variables included when given on purpose.
          ...env,
          PYTHONUNBUFFERED: "1",
          PROCGRPC_SOCKET: this.socketPath,
          PROCGRPC_WORKER_ID: this.id,
          PROCGRPC_CONTROL_FD: String(CONTROL_FD),
          ...(this.offersPipeSocket ? { PROCGRPC_PIPE_FD: String(PIPE_FD) } : {}),
          PROCGRPC_MAX_CONCURRENCY: String(maxInFlightPerWorker),
          PROCGRPC_GRACE_SECONDS: String(workerDrainGraceMs(this.options.killTimeoutMs) / 1000),
          PROCGRPC_PROCESS_GROUP: "1",
          ...(this.socketDirOwned ? { PROCGRPC_SOCKET_DIR_OWNED: "1" } : {}),
          ...(cpuAffinity ? { PROCGRPC_CPU_AFFINITY: cpuAffinity.join(",") } : {}),
        },
        // fd 4: the socket pair of the pipelined transport, when the pool sends calls on it.
        stdio: ["ignore", "pipe", "pipe", "pipe", this.offersPipeSocket ? "pipe" : "ignore"],
        // Its own process group: stop and kill signals reach the servicer's subprocesses too,
        // and whatever is left of the group after the worker exits is killed.
        detached: true,
      });
    } catch (err) {
      throw fail(`could not spawn ${python}: ${(err as Error).message}`, err);
    }
    this.child = child;

    const spawnFailed = new Promise<never>((_, reject) => {
      child.once("error", (err: NodeJS.ErrnoException) => {
        // spawn reports a missing working directory as ENOENT too.
        const hint = err.code !== "ENOENT" ? "" : existsSync(cwd) ? ` (no such file: check the \`python\` option or PROCGRPC_PYTHON)` : ` (the working directory ${cwd} does not exist: check the \`cwd\` option)`;
        reject(fail(`could not run ${python}: ${err.message}${hint}`, err));
      });
    });
    spawnFailed.catch(() => undefined);
    this.captureOutput(child.stdout as Readable, "stdout");
    this.captureOutput(child.stderr as Readable, "stderr");
    // The exit is the process's exit, not the end of its stdio: a subprocess or fork of the
    // servicer that inherited stdout/stderr may hold them open long after the worker died.
    child.once("exit", (code, signal) => this.handleExit({ code, signal }));
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      this.resolveOutputDone();
      this.handleExit({ code, signal }); // a process that never started (spawn error) has no 'exit'
    });

    const control = child.stdio[CONTROL_FD] as Readable;
    const reportedReady = new Promise<void>((resolve, reject) => {
      forEachLine(control, (line) => {
        try {
          const msg = JSON.parse(line) as { event?: string; pipe?: string };
          if (msg.event === "ready") {
            // A worker that serves the pipeline on the socket pair says so (older ones do not).
            if (msg.pipe === "socket") this.pipeSocket = child.stdio[PIPE_FD] as Duplex;
            else child.stdio[PIPE_FD]?.destroy();
            resolve();
          }
        } catch {
          // Not ours; the control channel carries only JSON lines from procgrpc.
        }
      });
      // The stderr tail is complete once stdio closed (bounded: a descendant may hold it).
      void this.exited.then(async (exit) => {
        await this.outputDone;
        reject(fail(`process exited before it was ready (${describeExit(exit)})`));
      });
    });

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(fail(`not SERVING within startTimeoutMs (${startTimeoutMs} ms)`)), startTimeoutMs);
    });
    try {
      await Promise.race([reportedReady, spawnFailed, timedOut]);
      const grpc = grpcJs();
      this.channel = new grpc.Client(`unix:${this.socketPath}`, grpc.credentials.createInsecure(), LOCAL_CHANNEL_OPTIONS);
      const deadline = new Date(startedAt + startTimeoutMs);
      const status = await Promise.race([checkHealth(this.channel, deadline), spawnFailed, timedOut]).catch((err: unknown) => {
        if (err instanceof WorkerStartError) throw err;
        throw fail(`health check failed: ${(err as Error).message}`, err);
      });
      if (status !== "SERVING") throw fail(`health check answered ${status}, not SERVING`);
      if (this.prepare) {
        await Promise.race([this.prepare(this, deadline), spawnFailed, timedOut]).catch((err: unknown) => {
          if (err instanceof WorkerStartError) throw err;
          throw fail(`could not put the pool's kill switches in force: ${(err as Error).message}`, err);
        });
      }
    } catch (err) {
      // A start that failed because stop() was called (the worker, told to stop, answers
      // NOT_SERVING or refuses the kill switches) lets the worker stop in order: stop() SIGKILLs
      // it after killTimeoutMs if it does not.
      if (!this.stopRequested) this.kill();
      await this.exited;
      this.closeChannel();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.state = "ready";
    this.logger.debug({ workerId: this.id, pid: this.pid, socket: this.socketPath, ms: Date.now() - startedAt }, "worker ready");
  }

  /**
   * Sends SIGTERM to the worker's process group, then SIGKILL after `killTimeoutMs`; resolves
   * when the process is gone (the worker drains for `workerDrainGraceMs`, shorter, then exits).
   */
  async stop(): Promise<WorkerExit> {
    if (this.exit) return this.exit;
    // Never spawned (a slot made but not started, or spawn threw): nothing to wait for.
    if (!this.child) return { code: null, signal: null };
    this.stopRequested = true;
    signalGroup(this.child, "SIGTERM");
    const timer = setTimeout(() => this.kill(), this.options.killTimeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Whether the worker gets the pipelined transport's socket pair (`pipelineCarrier: "socket-pair"`). */
  private get offersPipeSocket(): boolean {
    return this.options.transport === "pipelined" && this.options.pipelineCarrier === "socket-pair";
  }

  /** SIGKILLs the process and its process group at once. */
  kill(): void {
    if (this.child && !this.exit && this.child.exitCode === null) signalGroup(this.child, "SIGKILL");
  }

  private handleExit(exit: WorkerExit): void {
    if (this.exit) return;
    const child = this.child as ChildProcess;
    // Whatever the worker left in its group (a servicer's subprocess or fork) goes with it.
    signalGroup(child, "SIGKILL");
    this.exit = exit;
    this.closeChannel();
    // Nobody reads an untaken socket pair, so its end would never close it (nor let 'close' come).
    if (!this.pipeSocketTaken) child.stdio[PIPE_FD]?.destroy();
    this.pipeSocket = undefined;
    // A killed worker cannot remove its own socket; one that found its path in use by another
    // live server must not remove that server's.
    if (exit.code !== EXIT_SOCKET_IN_USE) {
      try {
        unlinkSync(this.socketPath);
      } catch {
        // Removed by the worker itself.
      }
    }
    // Stdio held by a descendant outside the group is not read for ever (no fd leak per restart).
    const stopReading = setTimeout(() => {
      for (const stream of child.stdio) stream?.destroy();
      this.resolveOutputDone();
    }, OUTPUT_AFTER_EXIT_MS);
    stopReading.unref();
    void this.outputDone.then(() => clearTimeout(stopReading));
    for (const call of this.calls) call.failWorkerGone(exit);
    this.calls.clear();
    this.resolveExited(exit);
    this.exitListener?.(exit);
  }

  /**
   * The socket pair the worker serves the pipeline on, once: a pipeline half-closes it when it
   * closes, so a later pipeline to the same worker takes the `Pipe` gRPC stream instead.
   * Undefined when the worker does not serve it (an older procgrpc) or it was taken.
   */
  takePipeSocket(): Duplex | undefined {
    const socket = this.pipeSocket;
    this.pipeSocket = undefined;
    this.pipeSocketTaken = socket !== undefined;
    return socket;
  }

  private closeChannel(): void {
    this.channel?.close();
    this.channel = undefined;
  }

  private captureOutput(stream: Readable, name: "stdout" | "stderr"): void {
    forEachLine(stream, (line) => {
      if (name === "stderr") {
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
      }
      this.relayLog(line, name);
    });
  }

  /**
   * Re-emits a worker's line through the pool logger. Relayed lines use the worker's snake_case
   * keys, one per fact: `worker_id`, `worker_pid` (the worker's; `pid`, like `time`, is the pool
   * logger's own), `source: "worker"`, then the record's own fields (`request_id`, …). A JSON
   * line from procgrpc's logger keeps its level; any other line is kept as text, at `warn` from
   * stderr (tracebacks, crash dumps) and at `info` from stdout.
   */
  private relayLog(line: string, stream: "stdout" | "stderr"): void {
    if (line.startsWith("{")) {
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        rec = undefined; // Not JSON after all: kept as text below.
      }
      if (typeof rec === "object" && rec !== null && !Array.isArray(rec)) {
        const { level, msg, time: _time, pid, worker_id: _workerId, ...rest } = rec as Record<string, unknown>;
        const fields = { ...rest, worker_id: this.id, worker_pid: typeof pid === "number" ? pid : this.pid, source: "worker" };
        this.logger[levelOf(level)](fields, typeof msg === "string" ? msg : undefined);
        return;
      }
    }
    this.logger[stream === "stderr" ? "warn" : "info"]({ worker_id: this.id, worker_pid: this.pid, source: "worker", stream }, line);
  }
}

function levelOf(level: unknown): "debug" | "info" | "warn" | "error" {
  switch (level) {
    case "debug":
    case "warn":
    case "error":
      return level;
    case "warning":
      return "warn";
    case "critical":
      return "error";
    default:
      return "info";
  }
}
