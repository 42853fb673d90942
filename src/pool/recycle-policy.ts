/**
 * Why a worker is replaced gracefully (new one SERVING first, then the old one drains): its
 * request limit, its memory, a long unhealthy spell, `pool.recycle()` (`manual`), or a change of
 * the worker's files in watch mode (`reload`).
 */
export type RecycleReason = "requests" | "memory" | "unhealthy" | "manual" | "reload";

/**
 * When one worker process should be recycled: after `limit` calls (`maxRequestsPerWorker` lowered
 * by a random fraction up to `jitter`, drawn once per process so workers do not recycle together)
 * or once its resident memory exceeds `maxMemoryMb`. Zero turns a limit off.
 */
export class RecyclePolicy {
  /** This process's call limit (0: none). */
  readonly requestLimit: number;

  constructor(
    maxRequestsPerWorker: number,
    private readonly maxMemoryMb: number,
    jitter: number,
    random: () => number = Math.random,
  ) {
    this.requestLimit = maxRequestsPerWorker > 0 ? Math.max(1, Math.round(maxRequestsPerWorker * (1 - jitter * random()))) : 0;
  }

  /** The reason to recycle a process that has served `served` calls and holds `rssMb` resident, or undefined. */
  check(served: number, rssMb: number | undefined): RecycleReason | undefined {
    if (this.requestLimit > 0 && served >= this.requestLimit) return "requests";
    if (this.maxMemoryMb > 0 && rssMb !== undefined && rssMb > this.maxMemoryMb) return "memory";
    return undefined;
  }
}
