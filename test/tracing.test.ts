import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { RpcError, Status, tracingMiddleware, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, testingPool } from "./helpers/env";
import { memoryLogger } from "./helpers/memory-logger";

// What an application's OpenTelemetry SDK set-up does: a context manager and the W3C propagator.
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

const tracing = tracingMiddleware({ tracerProvider });
const logger = memoryLogger();
const pool = new WorkerPool(testingPool({ workers: 1, logger, middleware: [tracing.call, tracing.attempt] }));
const testing = pool.client(TestServiceDefinition);

beforeAll(() => pool.start());
afterAll(async () => {
  await pool.shutdown();
  context.disable();
  propagation.disable();
});
beforeEach(() => exporter.reset());

test("a call span, a child attempt span, and the attempt's context continued in Python", async () => {
  const reply = await testing.chatter({ logMessage: "traced" });
  const spans = exporter.getFinishedSpans();
  const callSpan = spans.find((s) => s.name === "testing.v1.TestService/Chatter");
  const attemptSpan = spans.find((s) => s.name === "Attempt.testing.v1.TestService/Chatter");
  expect(callSpan?.kind).toBe(SpanKind.CLIENT);
  expect(callSpan?.attributes).toMatchObject({ "rpc.system.name": "grpc", "rpc.method": "testing.v1.TestService/Chatter", "rpc.response.status_code": "OK" });
  expect(attemptSpan?.parentSpanContext?.spanId).toBe(callSpan?.spanContext().spanId);
  expect(attemptSpan?.spanContext().traceId).toBe(callSpan?.spanContext().traceId);
  // Across the process boundary: Python extracted the traceparent the attempt span injected.
  expect(reply.traceId).toBe(callSpan?.spanContext().traceId);
  expect(reply.parentSpanId).toBe(attemptSpan?.spanContext().spanId);
  expect(await eventually(() => logger.entries.some((e) => e.msg === "traced" && e.fields.trace_id === reply.traceId), 5000)).toBe(true);
  const line = logger.entries.find((e) => e.msg === "traced");
  expect(line?.fields).toMatchObject({ trace_id: reply.traceId, parent_span_id: reply.parentSpanId, request_id: reply.requestId });
});

test("the call span is a child of the caller's active span", async () => {
  const tracer = tracerProvider.getTracer("app");
  const reply = await tracer.startActiveSpan("handle-request", async (parent) => {
    try {
      return await testing.chatter({});
    } finally {
      parent.end();
    }
  });
  const spans = exporter.getFinishedSpans();
  const parent = spans.find((s) => s.name === "handle-request");
  const callSpan = spans.find((s) => s.name === "testing.v1.TestService/Chatter");
  expect(callSpan?.parentSpanContext?.spanId).toBe(parent?.spanContext().spanId);
  expect(reply.traceId).toBe(parent?.spanContext().traceId);
});

test("a failed call ends both spans with ERROR status, the status code, request id and worker", async () => {
  const err = (await testing.chatter({ logMessage: "failing", failCode: Status.NOT_FOUND }).catch((e: unknown) => e)) as RpcError;
  expect(err).toBeInstanceOf(RpcError);
  const spans = exporter.getFinishedSpans();
  const callSpan = spans.find((s) => s.name === "testing.v1.TestService/Chatter");
  expect(callSpan?.status.code).toBe(SpanStatusCode.ERROR);
  expect(callSpan?.attributes).toMatchObject({
    "rpc.response.status_code": "NOT_FOUND",
    "error.type": "NOT_FOUND",
    "procgrpc.request_id": err.requestId,
    "procgrpc.worker.id": "w0",
    "procgrpc.error.category": "worker",
  });
  expect(spans.find((s) => s.name.startsWith("Attempt."))?.status.code).toBe(SpanStatusCode.ERROR);
  const traceId = callSpan?.spanContext().traceId;
  expect(await eventually(() => logger.entries.some((e) => e.msg === "failing" && e.fields.trace_id === traceId && e.fields.request_id === err.requestId), 5000)).toBe(true);
});

test("without tracing middleware nothing is injected and Python sees no trace", async () => {
  const plain = new WorkerPool(testingPool({ workers: 1 }));
  await plain.start();
  try {
    const reply = await plain.client(TestServiceDefinition).chatter({});
    expect(reply.traceId).toBe("");
    expect(trace.getActiveSpan()).toBeUndefined();
  } finally {
    await plain.shutdown();
  }
});

test("with the pool's retry, every attempt gets its own span under the one call span", async () => {
  const { RESILIENCE_WORKER, stateDir } = await import("./helpers/resilience");
  const { ResilienceTestServiceDefinition } = await import("../src/gen/testing/v1/resilience");
  const retrying = new WorkerPool(
    testingPool({ workers: 1, script: RESILIENCE_WORKER, retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 5 }, middleware: [tracing.call], attemptMiddleware: [tracing.attempt] }),
  );
  await retrying.start();
  try {
    const reply = await retrying.client(ResilienceTestServiceDefinition).flaky({ key: "traced", stateDir: stateDir(), failFirst: 2 });
    expect(reply.attempt).toBe(3);
    const spans = exporter.getFinishedSpans();
    const callSpan = spans.find((s) => s.name === "testing.v1.ResilienceTestService/Flaky");
    const attempts = spans.filter((s) => s.name === "Attempt.testing.v1.ResilienceTestService/Flaky");
    expect(attempts).toHaveLength(3);
    for (const a of attempts) expect(a.parentSpanContext?.spanId).toBe(callSpan?.spanContext().spanId);
    expect(attempts.map((a) => a.status.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.ERROR, SpanStatusCode.UNSET]);
  } finally {
    await retrying.shutdown();
  }
});
