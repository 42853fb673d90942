import type { MeterProvider } from "@opentelemetry/api";
import type { UnaryMiddleware } from "../call/interceptor";
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
 * Client middleware recording each call's duration, by method and status, with the
 * OpenTelemetry metrics API. Place it first (outermost) so the duration covers queueing and,
 * once a retry middleware exists, every attempt.
 */
export function metricsMiddleware(options: MetricsMiddlewareOptions = {}): UnaryMiddleware {
  const { callDuration, legacyCallDuration } = callInstruments(procgrpcMeter(options.meterProvider), options.semconv ?? "current");
  const record = (path: string, startedAt: number, code: Status): void => {
    const seconds = (performance.now() - startedAt) / 1000;
    const { service, method, full } = splitMethodPath(path);
    if (callDuration) {
      const name = statusName(code);
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
  return async (call, next) => {
    const startedAt = performance.now();
    try {
      const response = await next(call);
      record(call.method.path, startedAt, Status.OK);
      return response;
    } catch (err) {
      record(call.method.path, startedAt, isRpcError(err) ? err.code() : Status.UNKNOWN);
      throw err;
    }
  };
}
