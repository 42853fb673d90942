import { checkHealth, type ServingStatus } from "../transport/health-check";
import type { WorkerProcess } from "./worker-process";

/** One health check's outcome: the status answered, or a miss (error or no answer within the deadline). */
export type HealthCheckResult = { status: ServingStatus; misses: 0 } | { status: "miss"; misses: number; error: string };

/**
 * Asks one worker process grpc.health.v1 `Check` every `intervalMs`, each with its own
 * `timeoutMs` deadline, and reports every result. `Check` rather than `Watch`: a Watch stream
 * stays open through the worker's drain and would hold its `server.stop()` for the whole grace.
 * Checks never overlap; the timer does not keep Node alive.
 */
export class HealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private misses = 0;

  constructor(
    private readonly worker: WorkerProcess,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly onResult: (result: HealthCheckResult) => void,
  ) {}

  /** Starts checking; the first check runs after one interval. */
  start(): void {
    this.schedule();
  }

  /** Stops checking; a check in progress is ignored when it ends. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    const channel = this.worker.channel;
    if (this.stopped || !channel) return;
    let result: HealthCheckResult;
    try {
      const status = await checkHealth(channel, new Date(Date.now() + this.timeoutMs));
      this.misses = 0;
      result = { status, misses: 0 };
    } catch (err) {
      this.misses += 1;
      result = { status: "miss", misses: this.misses, error: (err as Error).message };
    }
    if (this.stopped) return;
    this.onResult(result);
    this.schedule();
  }
}
