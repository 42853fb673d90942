// The call-path features whose cost bench/run.ts measures against the bare procgrpc call.
import { metricsMiddleware, startPrometheusEndpoint, tracingMiddleware, type CallOptions, type ClientOptions, type WorkerPoolOptions } from "../src";

/** One configuration of the pool and client; `call` gives per-call options. */
export interface FeatureVariant {
  name: string;
  pool?: Partial<WorkerPoolOptions>;
  client?: ClientOptions;
  call?: () => CallOptions;
  /** Releases what the variant set up (e.g. a metrics endpoint). */
  close?: () => Promise<void>;
}

/** The bare call first; every other variant is reported as a cost relative to it. */
export async function featureVariants(): Promise<FeatureVariant[]> {
  // Metrics recorded into a real SDK meter provider (the Prometheus exporter's), not a no-op.
  const endpoint = await startPrometheusEndpoint({ port: 0 });
  const tracing = tracingMiddleware();
  return [
    { name: "bare procgrpc call" }, // the default transport (pipelined)
    { name: "+ per-call deadline (timeoutMs)", call: () => ({ timeoutMs: 5000 }) },
    { name: "+ metrics middleware (OpenTelemetry SDK)", pool: { middleware: [metricsMiddleware({ meterProvider: endpoint.meterProvider })] }, close: () => endpoint.close() },
    { name: "+ tracing middleware (no SDK registered)", pool: { middleware: [tracing.call], attemptMiddleware: [tracing.attempt] } },
    { name: "+ retries enabled, unused", pool: { retry: true } },
    { name: "+ circuit breakers (worker and method)", pool: { circuitBreaker: { workers: true, methods: true } } },
    { name: "all of the above", pool: { retry: true, circuitBreaker: { workers: true, methods: true }, middleware: [metricsMiddleware({ meterProvider: endpoint.meterProvider }), tracing.call], attemptMiddleware: [tracing.attempt] }, call: () => ({ timeoutMs: 5000 }) },
  ];
}
