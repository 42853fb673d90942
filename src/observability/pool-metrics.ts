import type { BatchObservableResult, MeterProvider } from "@opentelemetry/api";
import type { WorkerPool } from "../pool/worker-pool";
import { poolInstruments, procgrpcMeter } from "./instruments";
import { ATTR_RECYCLE_REASON, ATTR_RESTART_REASON, ATTR_WORKER_ID, ATTR_WORKER_STATE } from "./semconv";

/** Options for `observePoolMetrics`. */
export interface PoolMetricsOptions {
  /** Where to record; the global OpenTelemetry provider by default. */
  meterProvider?: MeterProvider;
}

/** Stops what `observePoolMetrics` started. */
export interface PoolMetricsHandle {
  /** Removes the pool listeners and the observable callbacks. */
  stop(): void;
}

/**
 * Records a pool's instruments: workers by state, calls in flight, queue depth and worker
 * memory (observed from `health()` at each collection), queue wait time (`callDequeued`),
 * calls refused by a full queue (`queueFull`), restarts (`workerRestart`) and recycles
 * (`workerRecycled`).
 */
export function observePoolMetrics(pool: WorkerPool, options: PoolMetricsOptions = {}): PoolMetricsHandle {
  const meter = procgrpcMeter(options.meterProvider);
  const inst = poolInstruments(meter);
  // States seen once keep being reported (as 0) so a gauge drops to zero instead of vanishing.
  const seenStates = new Set<string>(["ready"]);
  const observe = (result: BatchObservableResult): void => {
    const health = pool.health();
    const byState = new Map<string, number>([...seenStates].map((s) => [s, 0]));
    let inFlight = 0;
    for (const w of health.workers) {
      seenStates.add(w.state);
      byState.set(w.state, (byState.get(w.state) ?? 0) + 1);
      inFlight += w.inFlight;
    }
    for (const [state, count] of byState) result.observe(inst.workers, count, { [ATTR_WORKER_STATE]: state });
    result.observe(inst.callsInFlight, inFlight);
    result.observe(inst.queueDepth, health.queued);
    for (const w of health.workers) if (w.rssMb !== undefined) result.observe(inst.workerMemory, w.rssMb * 1024 * 1024, { [ATTR_WORKER_ID]: w.id });
  };
  const observables = [inst.workers, inst.callsInFlight, inst.queueDepth, inst.workerMemory];
  meter.addBatchObservableCallback(observe, observables);

  const onDequeued = (e: { waitedMs: number }): void => inst.queueWait.record(e.waitedMs / 1000);
  const onQueueFull = (): void => inst.queueRejected.add(1);
  const onRestart = (e: { workerId: string; reason: string }): void => inst.restarts.add(1, { [ATTR_WORKER_ID]: e.workerId, [ATTR_RESTART_REASON]: e.reason });
  const onRecycled = (e: { workerId: string; reason: string }): void => inst.recycles.add(1, { [ATTR_WORKER_ID]: e.workerId, [ATTR_RECYCLE_REASON]: e.reason });
  pool.on("callDequeued", onDequeued);
  pool.on("queueFull", onQueueFull);
  pool.on("workerRestart", onRestart);
  pool.on("workerRecycled", onRecycled);
  return {
    stop() {
      meter.removeBatchObservableCallback(observe, observables);
      pool.off("callDequeued", onDequeued);
      pool.off("queueFull", onQueueFull);
      pool.off("workerRestart", onRestart);
      pool.off("workerRecycled", onRecycled);
    },
  };
}
