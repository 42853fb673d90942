/**
 * OpenTelemetry semantic-convention names procgrpc emits. RPC names follow the current RPC
 * conventions (`rpc.client.call.duration` in seconds, `rpc.method` = `package.Service/Method`,
 * `rpc.response.status_code` = the status name); `semconv: "v1.37"` emits the earlier
 * experimental ones (`rpc.client.duration` in ms by `rpc.service`, `rpc.method`,
 * `rpc.grpc.status_code`) that many dashboards still query.
 */
export const ATTR_RPC_SYSTEM_NAME = "rpc.system.name";
export const ATTR_RPC_METHOD = "rpc.method";
export const ATTR_RPC_RESPONSE_STATUS_CODE = "rpc.response.status_code";
export const ATTR_ERROR_TYPE = "error.type";
export const METRIC_RPC_CLIENT_CALL_DURATION = "rpc.client.call.duration";

// The v1.37 (experimental) RPC conventions.
export const ATTR_RPC_SYSTEM = "rpc.system";
export const ATTR_RPC_SERVICE = "rpc.service";
export const ATTR_RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code";
export const METRIC_RPC_CLIENT_DURATION = "rpc.client.duration";

// procgrpc's own attributes.
export const ATTR_WORKER_ID = "procgrpc.worker.id";
export const ATTR_WORKER_STATE = "procgrpc.worker.state";
export const ATTR_REQUEST_ID = "procgrpc.request_id";
export const ATTR_ERROR_CATEGORY = "procgrpc.error.category";
export const ATTR_RECYCLE_REASON = "procgrpc.recycle.reason";
export const ATTR_RESTART_REASON = "procgrpc.restart.reason";

/** Which RPC conventions the metrics middleware emits. */
export type SemconvMode = "current" | "v1.37" | "both";

/** `/pkg.Service/Method` → `{ service: "pkg.Service", method: "Method", full: "pkg.Service/Method" }`. */
export function splitMethodPath(path: string): { service: string; method: string; full: string } {
  const full = path.startsWith("/") ? path.slice(1) : path;
  const slash = full.lastIndexOf("/");
  return slash < 0 ? { service: "", method: full, full } : { service: full.slice(0, slash), method: full.slice(slash + 1), full };
}
