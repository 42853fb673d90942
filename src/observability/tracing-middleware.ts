import type { Context, Span, TracerProvider } from "@opentelemetry/api";
import { otelApi } from "./otel-api";
import type { Interceptor } from "../call/interceptor";
import { observeCall } from "../call/observe-call";
import { isRpcError } from "../core/rpc-error";
import { Status, statusName } from "../core/status";
import { INSTRUMENTATION_SCOPE } from "./instruments";
import { withMetadata } from "../core/metadata";
import {
  ATTR_ERROR_CATEGORY,
  ATTR_ERROR_TYPE,
  ATTR_REQUEST_ID,
  ATTR_RPC_METHOD,
  ATTR_RPC_RESPONSE_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  ATTR_WORKER_ID,
  splitMethodPath,
} from "./semconv";

/** Span attributes counting a call's messages (1 each way for a unary call). */
const ATTR_MESSAGES_SENT = "procgrpc.messages.sent";
const ATTR_MESSAGES_RECEIVED = "procgrpc.messages.received";

/** Options for `tracingMiddleware`. */
export interface TracingOptions {
  /** Where spans go; the global OpenTelemetry provider by default (no-op until an SDK is registered). */
  tracerProvider?: TracerProvider;
}

/** The two halves of procgrpc tracing; see `tracingMiddleware`. */
export interface TracingMiddleware {
  /** Opens the CLIENT span of the whole call (of any kind; a stream's span ends with the stream). Place it outside any retry interceptor. */
  readonly call: Interceptor;
  /** Opens one child span per attempt and injects its context (W3C `traceparent`) into the metadata. Put it in the pool's `attemptMiddleware` (inside retries and hedging). */
  readonly attempt: Interceptor;
}

/**
 * Tracing with the OpenTelemetry API only (bring your own SDK), for every kind of call: a CLIENT span per call named
 * `package.Service/Method`, and a child span per attempt whose context is injected into the
 * call metadata with the global propagator (W3C `traceparent` with the SDK's defaults), so the
 * Python worker can continue the trace. Use `middleware: [tracing.call]` and
 * `attemptMiddleware: [tracing.attempt]` on the pool, so that every retry or hedge gets its span.
 */
export function tracingMiddleware(options: TracingOptions = {}): TracingMiddleware {
  const { context: otelContext, propagation, SpanKind, trace } = otelApi();
  const provider = (): TracerProvider => options.tracerProvider ?? trace.getTracerProvider();
  // The call span's context travels with the call (UnaryCall.values), so the attempt middleware
  // finds its parent across retries and hedges even without an OpenTelemetry context manager.
  const PARENT = Symbol("procgrpc.tracing.callSpan");

  const call: Interceptor = (c, next) => {
    const tracer = provider().getTracer(INSTRUMENTATION_SCOPE);
    const { full } = splitMethodPath(c.method.path);
    const span = tracer.startSpan(full, { kind: SpanKind.CLIENT, attributes: { [ATTR_RPC_SYSTEM_NAME]: "grpc", [ATTR_RPC_METHOD]: full } });
    const ctx = trace.setSpan(otelContext.active(), span);
    return otelContext.with(ctx, () => observeCall({ ...c, values: { ...c.values, [PARENT]: ctx } }, next, endSpan(span)));
  };

  const attempt: Interceptor = (c, next) => {
    const tracer = provider().getTracer(INSTRUMENTATION_SCOPE);
    const parent = (c.values?.[PARENT] as Context | undefined) ?? otelContext.active();
    const { full } = splitMethodPath(c.method.path);
    const span = tracer.startSpan(`Attempt.${full}`, { kind: SpanKind.INTERNAL, attributes: { [ATTR_RPC_METHOD]: full } }, parent);
    const ctx = trace.setSpan(parent, span);
    const carrier: Record<string, string> = {};
    propagation.inject(ctx, carrier);
    return otelContext.with(ctx, () => observeCall({ ...c, options: withMetadata(c.options, carrier) }, next, endSpan(span)));
  };
  return { call, attempt };
}

/** Ends `span` with the call: OK, or the error's status; messages of streams counted as span attributes. */
function endSpan(span: Span): { onRequest(): void; onResponse(): void; onEnd(error: unknown, abandoned: boolean): void } {
  let sent = 0;
  let received = 0;
  return {
    onRequest: () => void (sent += 1),
    onResponse: () => void (received += 1),
    onEnd: (error, abandoned) => {
      span.setAttribute(ATTR_MESSAGES_SENT, sent);
      span.setAttribute(ATTR_MESSAGES_RECEIVED, received);
      if (abandoned) {
        span.setAttribute(ATTR_RPC_RESPONSE_STATUS_CODE, "CANCELLED");
        span.end();
      } else if (error === undefined) {
        span.setAttribute(ATTR_RPC_RESPONSE_STATUS_CODE, "OK");
        span.end();
      } else {
        endWithError(span, error);
      }
    },
  };
}

function endWithError(span: Span, err: unknown): void {
  const code = isRpcError(err) ? err.code() : Status.UNKNOWN;
  span.setAttribute(ATTR_RPC_RESPONSE_STATUS_CODE, statusName(code));
  span.setAttribute(ATTR_ERROR_TYPE, statusName(code));
  if (isRpcError(err)) {
    span.setAttribute(ATTR_ERROR_CATEGORY, err.category);
    if (err.requestId) span.setAttribute(ATTR_REQUEST_ID, err.requestId);
    if (err.workerId) span.setAttribute(ATTR_WORKER_ID, err.workerId);
  }
  span.setStatus({ code: otelApi().SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}
