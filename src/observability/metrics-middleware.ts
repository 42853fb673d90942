import type { MeterProvider } from "@opentelemetry/api";
import type { Interceptor } from "../call/interceptor";
import { observeCall } from "../call/observe-call";
import { isRpcError } from "../core/rpc-error";
import { Status, statusName } from "../core/status";
import { callInstruments, procgrpcMeter } from "./instruments";
import {
  ATTR_ERROR_TYPE,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_RPC_METHOD,
  ATTR_RPC_RESPONSE_STATUS_CODE,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  ATTR_RPC_SYSTEM_NAME,
  splitMethodPath,
  type SemconvMode,
} from "./semconv";

/** Options for `metricsMiddleware`. */
export interface MetricsMiddlewareOptions {
  /** Where to record; the global OpenTelemetry provider by default (a no-op until an SDK is registered). */
  meterProvider?: MeterProvider;
  /** Which RPC semantic conventions to emit: `"current"` (default), `"v1.37"` or `"both"`. */
  semconv?: SemconvMode;
}

/**
 * An interceptor recording each call's duration and its request and response message counts, by
 * method and status, for every kind of call (a stream's duration runs until its end; a stream the
 * consumer leaves early is CANCELLED), with the OpenTelemetry metrics API. Place it first
 * (outermost) so the duration covers queueing and every attempt.
 */
export function metricsMiddleware(options: MetricsMiddlewareOptions = {}): Interceptor {
  const { callDuration, legacyCallDuration, requestsPerCall, responsesPerCall } = callInstruments(procgrpcMeter(options.meterProvider), options.semconv ?? "current");
  const record = (path: string, startedAt: number, code: Status, requests: number, responses: number): void => {
    const seconds = (performance.now() - startedAt) / 1000;
    const { service, method, full } = splitMethodPath(path);
    const name = statusName(code);
    const counted = { [ATTR_RPC_SYSTEM_NAME]: "grpc", [ATTR_RPC_METHOD]: full, [ATTR_RPC_RESPONSE_STATUS_CODE]: name };
    requestsPerCall.record(requests, counted);
    responsesPerCall.record(responses, counted);
    if (callDuration) {
      callDuration.record(seconds, {
        [ATTR_RPC_SYSTEM_NAME]: "grpc",
        [ATTR_RPC_METHOD]: full,
        [ATTR_RPC_RESPONSE_STATUS_CODE]: name,
        ...(code === Status.OK ? {} : { [ATTR_ERROR_TYPE]: name }),
      });
    }
    legacyCallDuration?.record(seconds * 1000, {
      [ATTR_RPC_SYSTEM]: "grpc",
      [ATTR_RPC_SERVICE]: service,
      [ATTR_RPC_METHOD]: method,
      [ATTR_RPC_GRPC_STATUS_CODE]: code,
    });
  };
  return (call, next) => {
    const startedAt = performance.now();
    let requests = 0;
    let responses = 0;
    return observeCall(call, next, {
      onRequest: () => void (requests += 1),
      onResponse: () => void (responses += 1),
      onEnd: (error, abandoned) => record(call.method.path, startedAt, abandoned ? Status.CANCELLED : error === undefined ? Status.OK : isRpcError(error) ? error.code() : Status.UNKNOWN, requests, responses),
    });
  };
}
