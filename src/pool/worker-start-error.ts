/**
 * Why `WorkerPool.start()` (or a restart) failed for one worker: names the worker, the command
 * that was run, and the last lines the process wrote to stderr.
 */
export class WorkerStartError extends Error {
  /** The worker's id, e.g. `w0`. */
  readonly workerId: string;
  /** The command line that was spawned. */
  readonly command: string;
  /** The last lines of the worker's stderr (at most 40). */
  readonly stderrTail: readonly string[];
  /** The process's exit code, when it exited. */
  readonly exitCode: number | null;
  /** The signal that ended the process, when one did. */
  readonly signal: NodeJS.Signals | null;

  constructor(init: {
    workerId: string;
    command: string;
    reason: string;
    stderrTail: readonly string[];
    exitCode?: number | null;
    signal?: NodeJS.Signals | null;
    cause?: unknown;
  }) {
    const tail = init.stderrTail.length > 0 ? `\n  stderr (last ${init.stderrTail.length} lines):\n    ${init.stderrTail.join("\n    ")}` : "\n  stderr: (empty)";
    super(`worker ${init.workerId} failed to start: ${init.reason}\n  command: ${init.command}${tail}`, { cause: init.cause });
    this.name = "WorkerStartError";
    this.workerId = init.workerId;
    this.command = init.command;
    this.stderrTail = init.stderrTail;
    this.exitCode = init.exitCode ?? null;
    this.signal = init.signal ?? null;
  }
}
