import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";

/** The ErrorInfo reason on errors of an open circuit. */
export const CIRCUIT_OPEN_REASON = "CIRCUIT_OPEN";

/**
 * The error an open method circuit fails calls with: UNAVAILABLE, category `lifecycle`, never
 * reached a worker, not `retryable` (retrying into an open circuit only adds load), with an
 * ErrorInfo (`reason: "CIRCUIT_OPEN"`) and a RetryInfo saying when the probe will be let through
 * (`remainingMs`; undefined for a half-open circuit whose probe is out). An `isolated` circuit's
 * error has no RetryInfo and `isolated: "true"` in the ErrorInfo metadata.
 */
export function circuitOpenError(method: string, remainingMs: number | undefined, requestId?: string, isolated = false): RpcError {
  if (isolated) {
    // Held open by an operator: no probe will come, so no RetryInfo.
    return new RpcError({
      code: Status.UNAVAILABLE,
      details: `circuit isolated for ${method}: held open by an operator, failing fast without calling a worker`,
      category: "lifecycle",
      method,
      requestId,
      reachedWorker: false,
      retryable: false,
      statusDetails: [{ kind: "ErrorInfo", typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: { reason: CIRCUIT_OPEN_REASON, domain: "procgrpc", metadata: { method, isolated: "true" } } }],
    });
  }
  // Half-open (remainingMs undefined): one probe is out; others fail fast until it settles.
  const retryAfterMs = remainingMs ?? 0;
  return new RpcError({
    code: Status.UNAVAILABLE,
    details:
      remainingMs === undefined
        ? `circuit half-open for ${method}: failing fast while one probe call is in flight`
        : `circuit open for ${method}: failing fast without calling a worker; a probe is let through in ${remainingMs} ms`,
    category: "lifecycle",
    method,
    requestId,
    reachedWorker: false,
    retryable: false,
    statusDetails: [
      {
        kind: "ErrorInfo",
        typeUrl: "type.googleapis.com/google.rpc.ErrorInfo",
        value: { reason: CIRCUIT_OPEN_REASON, domain: "procgrpc", metadata: { method, retryAfterMs: String(retryAfterMs) } },
      },
      {
        kind: "RetryInfo",
        typeUrl: "type.googleapis.com/google.rpc.RetryInfo",
        value: { retryDelay: { seconds: Math.floor(retryAfterMs / 1000), nanos: (retryAfterMs % 1000) * 1e6 } },
      },
    ],
  });
}

/** True when `err` came from an open circuit. */
export function isCircuitOpen(err: RpcError): boolean {
  return err.findDetail("ErrorInfo")?.reason === CIRCUIT_OPEN_REASON && err.findDetail("ErrorInfo")?.domain === "procgrpc";
}
