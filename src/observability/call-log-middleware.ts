import { randomUUID } from "node:crypto";
import { trace } from "@opentelemetry/api";
import type { UnaryMiddleware } from "../call/interceptor";
import { isRpcError } from "../core/rpc-error";
import { statusName } from "../core/status";
import type { Logger } from "../core/logger";

/** Options for `callLogMiddleware`. */
export interface CallLogOptions {
  /** Where lines go (the pool's logger is a good choice). */
  logger: Logger;
  /** Level of the line for a failed call; default `warn`. */
  failureLevel?: "info" | "warn" | "error";
  /** Also log successful calls at `debug`; default true (free when debug is off). */
  logSuccess?: boolean;
}

/**
 * Client middleware that logs each failed call with its request id, method, code, category,
 * worker and trace id — the same request id the Python worker logs and the `RpcError` carries.
 * It fixes the call's `requestId` (generating one when the caller gave none) before the call
 * starts, so every attempt and every log line of one call share it.
 */
export function callLogMiddleware(options: CallLogOptions): UnaryMiddleware {
  const { logger } = options;
  const failureLevel = options.failureLevel ?? "warn";
  const logSuccess = options.logSuccess ?? true;
  return async (call, next) => {
    const requestId = call.options.requestId ?? randomUUID();
    const startedAt = performance.now();
    const traceId = trace.getActiveSpan()?.spanContext().traceId;
    const base = { requestId, method: call.method.path, ...(traceId ? { traceId } : {}) };
    try {
      const response = await next({ ...call, options: { ...call.options, requestId } });
      if (logSuccess) logger.debug({ ...base, ms: Math.round(performance.now() - startedAt) }, "call ok");
      return response;
    } catch (err) {
      const fields: Record<string, unknown> = { ...base, ms: Math.round(performance.now() - startedAt) };
      if (isRpcError(err)) {
        Object.assign(fields, { code: statusName(err.code()), details: err.details(), category: err.category, workerId: err.workerId, retryable: err.retryable });
      } else {
        fields.err = err instanceof Error ? err.message : String(err);
      }
      logger[failureLevel](fields, "call failed");
      throw err;
    }
  };
}
