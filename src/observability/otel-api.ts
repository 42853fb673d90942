import { loadOnUse } from "../core/load-on-use";

/**
 * The OpenTelemetry API, loaded when an observability feature is first used (a meter asked
 * for, a span started), not at `import "procgrpc"`.
 */
export const otelApi = loadOnUse<typeof import("@opentelemetry/api")>("@opentelemetry/api");
