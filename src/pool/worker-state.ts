/**
 * The states a pool worker moves through (docs/supervision.md has the diagram):
 * `starting` → `ready` ⇄ `unhealthy`; `ready` → `draining` → `stopped`;
 * an unexpected exit → `restarting` → `starting`; too many restarts → `failed`.
 */
export type WorkerState = "starting" | "ready" | "unhealthy" | "draining" | "restarting" | "stopped" | "failed";

/** How a worker process ended. */
export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}
