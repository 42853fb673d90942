import type { Counter, Histogram, Meter, MeterProvider, ObservableGauge } from "@opentelemetry/api";
import { otelApi } from "./otel-api";
import { METRIC_RPC_CLIENT_CALL_DURATION, METRIC_RPC_CLIENT_DURATION, type SemconvMode } from "./semconv";

/**
 * Every instrument procgrpc records, created in this one file so names, units and
 * descriptions stay together: call instruments (recorded by the metrics middleware), pool
 * instruments and resilience instruments (both recorded by `observePoolMetrics` from the
 * pool's events).
 */

/** Instrumentation scope name for every procgrpc meter and tracer. */
export const INSTRUMENTATION_SCOPE = "procgrpc";

/** The procgrpc meter of `provider` (the global provider by default: a no-op until an SDK is registered). */
export function procgrpcMeter(provider?: MeterProvider): Meter {
  return (provider ?? otelApi().metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE);
}

// Bucket boundaries suited to local-socket calls (sub-millisecond to tens of seconds).
const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const MS_BUCKETS = SECONDS_BUCKETS.map((s) => s * 1000);
const COUNT_BUCKETS = [0, 1, 2, 5, 10, 100, 1000, 10_000, 100_000];

/** Instruments the call middleware records. */
export interface CallInstruments {
  /** `rpc.client.call.duration` (s), current conventions. */
  callDuration?: Histogram;
  /** `rpc.client.duration` (ms), v1.37 conventions. */
  legacyCallDuration?: Histogram;
  /** `rpc.client.requests_per_rpc`: request messages sent per call (1 for unary and server-stream calls). */
  requestsPerCall: Histogram;
  /** `rpc.client.responses_per_rpc`: response messages received per call. */
  responsesPerCall: Histogram;
}

/** Creates the call-duration histogram(s) for `mode`. */
export function callInstruments(meter: Meter, mode: SemconvMode): CallInstruments {
  const out: CallInstruments = {
    requestsPerCall: meter.createHistogram("rpc.client.requests_per_rpc", { description: "Request messages sent per call.", unit: "{count}", advice: { explicitBucketBoundaries: COUNT_BUCKETS } }),
    responsesPerCall: meter.createHistogram("rpc.client.responses_per_rpc", { description: "Response messages received per call.", unit: "{count}", advice: { explicitBucketBoundaries: COUNT_BUCKETS } }),
  };
  if (mode !== "v1.37") {
    out.callDuration = meter.createHistogram(METRIC_RPC_CLIENT_CALL_DURATION, {
      description: "Duration of outgoing RPCs through the procgrpc pool (all attempts, queueing included).",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
  }
  if (mode !== "current") {
    out.legacyCallDuration = meter.createHistogram(METRIC_RPC_CLIENT_DURATION, {
      description: "Duration of outgoing RPCs through the procgrpc pool (v1.37 semantic conventions).",
      unit: "ms",
      advice: { explicitBucketBoundaries: MS_BUCKETS },
    });
  }
  return out;
}

/** Instruments observed from a pool's events and `health()`. */
export interface PoolInstruments {
  workers: ObservableGauge;
  callsInFlight: ObservableGauge;
  queueDepth: ObservableGauge;
  queueWait: Histogram;
  queueRejected: Counter;
  workerMemory: ObservableGauge;
  restarts: Counter;
  recycles: Counter;
  /** Warm spares by state (SERVING out of rotation when `ready`). */
  spares: ObservableGauge;
  /** Autoscaler decisions, by direction and reason. */
  scaleEvents: Counter;
  /** Workers added or removed by the autoscaler, by direction. */
  scaledWorkers: Counter;
  /** Calls refused by a kill switch without reaching a worker. */
  switchedOffCalls: Counter;
}

/** Creates the pool instruments. */
export function poolInstruments(meter: Meter): PoolInstruments {
  return {
    workers: meter.createObservableGauge("procgrpc.pool.workers", { description: "Workers in each state.", unit: "{worker}" }),
    callsInFlight: meter.createObservableGauge("procgrpc.pool.calls.in_flight", { description: "Calls running on a worker now.", unit: "{call}" }),
    queueDepth: meter.createObservableGauge("procgrpc.pool.queue.depth", { description: "Calls waiting for a free worker.", unit: "{call}" }),
    queueWait: meter.createHistogram("procgrpc.pool.queue.wait_time", {
      description: "How long calls that had to queue waited for a worker (calls admitted at once are not recorded).",
      unit: "s",
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    }),
    queueRejected: meter.createCounter("procgrpc.pool.queue.rejected", { description: "Calls refused with RESOURCE_EXHAUSTED because the queue was full.", unit: "{call}" }),
    workerMemory: meter.createObservableGauge("procgrpc.pool.worker.memory.rss", { description: "Resident memory of each worker process.", unit: "By" }),
    restarts: meter.createCounter("procgrpc.pool.worker.restarts", { description: "Respawns of workers that exited unexpectedly or were killed for a hung handler.", unit: "{restart}" }),
    recycles: meter.createCounter("procgrpc.pool.worker.recycles", { description: "Planned worker replacements (request count, memory, health).", unit: "{recycle}" }),
    spares: meter.createObservableGauge("procgrpc.pool.spares", { description: "Warm spare workers in each state (out of rotation).", unit: "{worker}" }),
    scaleEvents: meter.createCounter("procgrpc.pool.scale.decisions", { description: "Autoscaler decisions to add or remove workers.", unit: "{decision}" }),
    scaledWorkers: meter.createCounter("procgrpc.pool.scale.workers", { description: "Workers the autoscaler added to or drained from the rotation.", unit: "{worker}" }),
    switchedOffCalls: meter.createCounter("procgrpc.pool.switched_off.calls", { description: "Calls refused by a kill switch (or answered by a fallback) without reaching a worker.", unit: "{call}" }),
  };
}

/** Instruments fed by the pool's resilience events (`pool.resilience`). */
export interface ResilienceInstruments {
  retries: Counter;
  retryStops: Counter;
  circuitState: ObservableGauge;
  circuitRejections: Counter;
  hedges: Counter;
  fallbacks: Counter;
  deadLetters: Counter;
}

/** Creates the resilience instruments. */
export function resilienceInstruments(meter: Meter): ResilienceInstruments {
  return {
    retries: meter.createCounter("procgrpc.client.retries", { description: "Retries made (attempts after the first), by method and where the delay came from.", unit: "{retry}" }),
    retryStops: meter.createCounter("procgrpc.client.retry.stops", { description: "Calls on which the retry policy gave up, by reason (max-attempts, budget, deadline, unsafe, pushback).", unit: "{call}" }),
    circuitState: meter.createObservableGauge("procgrpc.client.circuit.state", { description: "1 for the current state of each circuit (method or worker), 0 for its other states.", unit: "1" }),
    circuitRejections: meter.createCounter("procgrpc.client.circuit.rejections", { description: "Calls an open method circuit failed fast.", unit: "{call}" }),
    hedges: meter.createCounter("procgrpc.client.hedges", { description: "Hedged copies sent beyond the first.", unit: "{call}" }),
    fallbacks: meter.createCounter("procgrpc.client.fallbacks", { description: "Calls answered by a fallback.", unit: "{call}" }),
    deadLetters: meter.createCounter("procgrpc.batch.dead_letters", { description: "Batch items written to a dead-letter store, by method and status code.", unit: "{item}" }),
  };
}
