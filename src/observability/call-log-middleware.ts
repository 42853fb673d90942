import { randomUUID } from "node:crypto";
import { otelApi } from "./otel-api";
import type { Interceptor } from "../call/interceptor";
import { observeCall } from "../call/observe-call";
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
 * An interceptor that logs each failed call (of any kind; a stream when it ends) with its request
 * id, method, code, category, worker and trace id — the same request id the Python worker logs
 * and the `RpcError` carries — and, at `debug`, each successful one with its message counts.
 */
export function callLogMiddleware(options: CallLogOptions): Interceptor {
  const { logger } = options;
  const failureLevel = options.failureLevel ?? "warn";
  const logSuccess = options.logSuccess ?? true;
  return (call, next) => {
    const requestId = call.options.requestId ?? randomUUID();
    const startedAt = performance.now();
    const traceId = otelApi().trace.getActiveSpan()?.spanContext().traceId;
    const base = { requestId, method: call.method.path, kind: call.kind, ...(traceId ? { traceId } : {}) };
    let sent = 0;
    let received = 0;
    return observeCall({ ...call, options: { ...call.options, requestId } }, next, {
      onRequest: () => void (sent += 1),
      onResponse: () => void (received += 1),
      onEnd: (err, abandoned) => {
        const ms = Math.round(performance.now() - startedAt);
        const counts = call.kind === "unary" ? {} : { sent, received };
        if (err === undefined) {
          if (logSuccess) logger.debug({ ...base, ...counts, ms, ...(abandoned ? { abandoned } : {}) }, "call ok");
          return;
        }
        const fields: Record<string, unknown> = { ...base, ...counts, ms };
        if (isRpcError(err)) {
          Object.assign(fields, { code: statusName(err.code()), details: err.details(), category: err.category, workerId: err.workerId, retryable: err.retryable });
        } else {
          fields.err = err instanceof Error ? err.message : String(err);
        }
        logger[failureLevel](fields, "call failed");
      },
    });
  };
}
