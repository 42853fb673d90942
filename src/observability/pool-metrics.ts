import type { BatchObservableResult, MeterProvider } from "@opentelemetry/api";
import type { WorkerPool } from "../pool/worker-pool";
import type { RemotePool } from "../remote/remote-pool";
import type { Meter, ObservableResult } from "@opentelemetry/api";
import type { CircuitState, ResilienceEventMap, ResilienceEvents } from "../resilience/events";
import { poolInstruments, procgrpcMeter, resilienceInstruments } from "./instruments";
import { statusName } from "../core/status";
import { ATTR_ERROR_TYPE, ATTR_RECYCLE_REASON, ATTR_RESTART_REASON, ATTR_RPC_METHOD, ATTR_WORKER_ID, ATTR_WORKER_STATE } from "./semconv";

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
 * (`workerRecycled`), warm spares by state, autoscaler decisions and the workers they moved
 * (`scale`), calls refused by a kill switch (`switchedOffCall`); and the resilience instruments from `pool.resilience`: retries and why
 * they stopped, circuit states, circuit rejections, hedges, fallbacks and dead letters.
 * A `RemotePool` reports its targets by channel state (`procgrpc.pool.workers`, state
 * `READY`, `CONNECTING`, …), its calls in flight and the resilience instruments; it has no
 * queue, processes or memory of its own.
 */
export function observePoolMetrics(pool: WorkerPool | RemotePool, options: PoolMetricsOptions = {}): PoolMetricsHandle {
  const meter = procgrpcMeter(options.meterProvider);
  const inst = poolInstruments(meter);
  // States seen once keep being reported (as 0) so a gauge drops to zero instead of vanishing.
  const seenStates = new Set<string>();
  const observe = (result: BatchObservableResult): void => {
    const health = pool.health();
    const members: { id: string; state: string; inFlight: number; rssMb?: number }[] = "targets" in health ? health.targets : health.workers;
    if (seenStates.size === 0) seenStates.add("targets" in health ? "READY" : "ready");
    const byState = new Map<string, number>([...seenStates].map((s) => [s, 0]));
    let inFlight = 0;
    for (const w of members) {
      seenStates.add(w.state);
      byState.set(w.state, (byState.get(w.state) ?? 0) + 1);
      inFlight += w.inFlight;
    }
    for (const [state, count] of byState) result.observe(inst.workers, count, { [ATTR_WORKER_STATE]: state });
    result.observe(inst.callsInFlight, inFlight);
    result.observe(inst.queueDepth, "queued" in health ? health.queued : 0);
    for (const w of members) if (w.rssMb !== undefined) result.observe(inst.workerMemory, w.rssMb * 1024 * 1024, { [ATTR_WORKER_ID]: w.id });
    if ("spares" in health) {
      const spares = new Map<string, number>([["ready", 0]]);
      for (const w of health.spares) {
        spares.set(w.state, (spares.get(w.state) ?? 0) + 1);
        if (w.rssMb !== undefined) result.observe(inst.workerMemory, w.rssMb * 1024 * 1024, { [ATTR_WORKER_ID]: w.id });
      }
      for (const [state, count] of spares) result.observe(inst.spares, count, { [ATTR_WORKER_STATE]: state });
    }
  };
  const observables = [inst.workers, inst.callsInFlight, inst.queueDepth, inst.workerMemory, inst.spares];
  meter.addBatchObservableCallback(observe, observables);
  const stopResilience = observeResilience(pool.resilience, meter);
  if (!isWorkerPool(pool)) {
    return {
      stop() {
        stopResilience();
        meter.removeBatchObservableCallback(observe, observables);
      },
    };
  }
  const onDequeued = (e: { waitedMs: number }): void => inst.queueWait.record(e.waitedMs / 1000);
  const onQueueFull = (): void => inst.queueRejected.add(1);
  const onRestart = (e: { workerId: string; reason: string }): void => inst.restarts.add(1, { [ATTR_WORKER_ID]: e.workerId, [ATTR_RESTART_REASON]: e.reason });
  const onRecycled = (e: { workerId: string; reason: string }): void => inst.recycles.add(1, { [ATTR_WORKER_ID]: e.workerId, [ATTR_RECYCLE_REASON]: e.reason });
  const onScale = (e: { direction: string; reason: string; workerIds: string[] }): void => {
    inst.scaleEvents.add(1, { "procgrpc.scale.direction": e.direction, "procgrpc.scale.reason": e.reason });
    inst.scaledWorkers.add(e.workerIds.length, { "procgrpc.scale.direction": e.direction });
  };
  const onSwitchedOff = (e: { method: string }): void => inst.switchedOffCalls.add(1, { [ATTR_RPC_METHOD]: methodName(e.method) });
  pool.on("callDequeued", onDequeued);
  pool.on("queueFull", onQueueFull);
  pool.on("workerRestart", onRestart);
  pool.on("workerRecycled", onRecycled);
  pool.on("scale", onScale);
  pool.on("switchedOffCall", onSwitchedOff);
  return {
    stop() {
      stopResilience();
      meter.removeBatchObservableCallback(observe, observables);
      pool.off("callDequeued", onDequeued);
      pool.off("queueFull", onQueueFull);
      pool.off("workerRestart", onRestart);
      pool.off("workerRecycled", onRecycled);
      pool.off("scale", onScale);
      pool.off("switchedOffCall", onSwitchedOff);
    },
  };
}

function isWorkerPool(pool: WorkerPool | RemotePool): pool is WorkerPool {
  return "recycle" in pool;
}

const CIRCUIT_STATES: readonly CircuitState[] = ["closed", "open", "half-open", "isolated"];

/** Records the resilience instruments from a pool's resilience events; returns the unsubscribe. */
function observeResilience(events: ResilienceEvents, meter: Meter): () => void {
  const inst = resilienceInstruments(meter);
  // The latest state of every circuit seen, reported as 1 for that state and 0 for the others.
  const circuits = new Map<string, { scope: string; key: string; state: CircuitState }>();
  const observeCircuits = (result: ObservableResult): void => {
    for (const c of circuits.values()) {
      for (const state of CIRCUIT_STATES) result.observe(c.state === state ? 1 : 0, { "procgrpc.circuit.scope": c.scope, "procgrpc.circuit.key": c.key, "procgrpc.circuit.state": state });
    }
  };
  inst.circuitState.addCallback(observeCircuits);
  const listeners: { [K in keyof ResilienceEventMap]?: (...args: ResilienceEventMap[K]) => void } = {
    retry: (e) => inst.retries.add(1, { [ATTR_RPC_METHOD]: methodName(e.method), "procgrpc.retry.delay_source": e.delaySource }),
    retryStop: (e) => inst.retryStops.add(1, { [ATTR_RPC_METHOD]: methodName(e.method), "procgrpc.retry.stop_reason": e.reason }),
    circuitStateChange: (e) => void circuits.set(`${e.scope}:${e.key}`, { scope: e.scope, key: e.key, state: e.to }),
    circuitReject: (e) => inst.circuitRejections.add(1, { [ATTR_RPC_METHOD]: methodName(e.method) }),
    hedge: (e) => inst.hedges.add(1, { [ATTR_RPC_METHOD]: methodName(e.method) }),
    fallback: (e) => inst.fallbacks.add(1, { [ATTR_RPC_METHOD]: methodName(e.method), [ATTR_ERROR_TYPE]: statusName(e.error.code()) }),
    deadLetter: (e) => inst.deadLetters.add(1, { [ATTR_RPC_METHOD]: methodName(e.method), [ATTR_ERROR_TYPE]: statusName(e.error.code()) }),
  };
  for (const [name, listener] of Object.entries(listeners)) events.on(name as keyof ResilienceEventMap, listener as never);
  return () => {
    inst.circuitState.removeCallback(observeCircuits);
    for (const [name, listener] of Object.entries(listeners)) events.off(name as keyof ResilienceEventMap, listener as never);
  };
}

/** `package.Service/Method` from a `/package.Service/Method` path, as the call instruments name it. */
function methodName(path: string): string {
  return path.startsWith("/") ? path.slice(1) : path;
}
