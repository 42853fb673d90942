import type { ScaleReason } from "./autoscaler";
import type { RecycleReason } from "./recycle-policy";
import type { WorkerState } from "./worker-state";

/** A slot in rotation (`active`) or a warm spare, SERVING but out of rotation (`spare`). */
export type SlotRole = "active" | "spare";

/** Why the pool killed a worker whose handler would not stop. */
export type HangReason = "cancel-grace" | "hard-timeout";

/**
 * Every event a `WorkerPool` emits (`pool.on(name, listener)`), with its payload. The order in
 * which they fire for each scenario is in docs/supervision.md ("Events"). `workerId` names the
 * slot (`w0`, `w1`, …), which keeps its id across restarts and recycles; `pid` names the process.
 */
export interface WorkerPoolEvents {
  /** Any worker process changed state (the diagram in docs/supervision.md); fires for every transition. */
  workerState: [{ workerId: string; pid: number | undefined; from: WorkerState; to: WorkerState }];
  /**
   * A worker process answered SERVING: at start, after a restart, and for a recycle's
   * replacement. It takes calls when `role` is `active`; a `spare` waits out of rotation.
   */
  workerReady: [{ workerId: string; pid: number | undefined; socket: string; role: SlotRole }];
  /**
   * A worker process ended. `expected` is true when the pool stopped it (shutdown, recycle,
   * replacement of an unhealthy worker); false for a crash or a kill for a hang.
   */
  workerExit: [{ workerId: string; pid: number | undefined; code: number | null; signal: NodeJS.Signals | null; stderrTail: readonly string[]; expected: boolean }];
  /** A respawn was scheduled after an unexpected exit; `attempt` counts restarts of this slot. */
  workerRestart: [{ workerId: string; attempt: number; delayMs: number; reason: "exit" | "hang" }];
  /** A worker stopped taking calls: it answered NOT_SERVING, or missed `unhealthyAfterMisses` checks in a row. */
  workerUnhealthy: [{ workerId: string; pid: number | undefined; reason: "not-serving" | "missed-checks"; misses: number }];
  /** An unhealthy worker answered SERVING again and takes calls again. */
  workerHealthy: [{ workerId: string; pid: number | undefined }];
  /** A handler kept running after its call was cancelled (past `cancelGraceMs`) or past `hardTimeoutMs`: the worker is being killed. */
  workerHung: [{ workerId: string; pid: number | undefined; reason: HangReason; method: string; requestId: string; runningMs: number }];
  /** A worker was replaced gracefully: `newPid` is SERVING and takes calls; `oldPid` now drains and stops. */
  workerRecycled: [{ workerId: string; oldPid: number | undefined; newPid: number | undefined; reason: RecycleReason }];
  /** `pool.drain(workerId)` finished: the worker has left the pool, which now has `remaining` workers. */
  workerDrained: [{ workerId: string; pid: number | undefined; remaining: number }];
  /** A worker restarted more than `restart.maxRestarts` times within `restart.windowMs`: it is `failed` and retried at `restart.maxDelayMs`. */
  degraded: [{ workerId: string; restartsInWindow: number; ready: number; total: number }];
  /** A `failed` worker came back SERVING. */
  recovered: [{ workerId: string; pid: number | undefined; ready: number; total: number }];
  /** A call that had to wait in the queue got a worker after `waitedMs` (calls admitted at once emit nothing). */
  callDequeued: [{ method: string; workerId: string; waitedMs: number }];
  /** A call was refused with RESOURCE_EXHAUSTED because `maxQueue` calls were already waiting. */
  queueFull: [{ method: string; maxQueue: number }];
  /**
   * The autoscaler decided to add (`up`) or remove (`down`) workers: `from` and `to` count the
   * workers in rotation before and after, `workerIds` are those added (spares promoted or cold
   * starts) or drained; the load it saw is `queued`, `oldestQueuedMs` and `inFlight`.
   */
  scale: [{ direction: "up" | "down"; reason: ScaleReason; from: number; to: number; workerIds: string[]; queued: number; oldestQueuedMs: number; inFlight: number }];
  /**
   * A warm spare went into rotation: in place of `replaced`, whose process died (`reason`
   * `worker-exit`; that slot restarts as the new spare), or for a scale-up (`scale-up`; a new
   * spare starts in the background).
   */
  sparePromoted: [{ workerId: string; pid: number | undefined; replaced: string | undefined; reason: "worker-exit" | "scale-up" }];
  /** A worker the autoscaler started did not become SERVING; its slot retries with the restart backoff. */
  scaleFailed: [{ workerId: string; error: string }];
  /** A kill switch was turned: calls to `target` (a method path or a service name) fail fast (`on: false`) or flow again. */
  switched: [{ target: string; scope: "method" | "service"; on: boolean }];
  /** A call to a switched-off method was refused (or answered by its fallback) without reaching a worker. */
  switchedOffCall: [{ method: string; target: string }];
}
