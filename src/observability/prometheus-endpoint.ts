import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { MeterProvider } from "@opentelemetry/api";

/** Options for `startPrometheusEndpoint`. */
export interface PrometheusEndpointOptions {
  /** TCP port; 0 picks a free one (see `port` on the result). */
  port: number;
  /** Address to bind; default `127.0.0.1` (metrics are not for the whole network unless you say so). */
  host?: string;
  /** Path served; default `/metrics`. */
  path?: string;
}

/** A running Prometheus scrape endpoint and the meter provider that feeds it. */
export interface PrometheusEndpoint {
  /** Pass to `metricsMiddleware({ meterProvider })` and `observePoolMetrics(pool, { meterProvider })`. */
  readonly meterProvider: MeterProvider;
  /** The port actually bound. */
  readonly port: number;
  /** `http://host:port/path`. */
  readonly url: string;
  /** Closes the HTTP server and shuts the meter provider down. */
  close(): Promise<void>;
}

/** The packages this needs; optional peer dependencies of procgrpc, installed by the application. */
const SDK_PACKAGES = ["@opentelemetry/sdk-metrics", "@opentelemetry/exporter-prometheus"] as const;

// Loaded on first use only: the SDK and exporter cost most of procgrpc's import time, and only
// this function needs them.
async function loadSdk(): Promise<{
  MeterProvider: typeof import("@opentelemetry/sdk-metrics").MeterProvider;
  PrometheusExporter: typeof import("@opentelemetry/exporter-prometheus").PrometheusExporter;
}> {
  try {
    const [{ MeterProvider }, { PrometheusExporter }] = await Promise.all([import("@opentelemetry/sdk-metrics"), import("@opentelemetry/exporter-prometheus")]);
    return { MeterProvider, PrometheusExporter };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "MODULE_NOT_FOUND" && code !== "ERR_MODULE_NOT_FOUND") throw err;
    throw new Error(
      `startPrometheusEndpoint needs ${SDK_PACKAGES.join(" and ")} (optional peer dependencies of procgrpc): ` +
        `npm install ${SDK_PACKAGES.join(" ")} (${(err as Error).message.split("\n")[0]})`,
      { cause: err },
    );
  }
}

/**
 * Serves procgrpc's metrics for Prometheus to scrape, with the OpenTelemetry SDK's Prometheus
 * exporter (it translates names: `rpc.client.call.duration` in seconds becomes
 * `rpc_client_call_duration_seconds`). `procgrpc serve --metrics-port` uses this.
 * Needs `@opentelemetry/sdk-metrics` and `@opentelemetry/exporter-prometheus` installed;
 * rejects with an Error that says so when they are not.
 */
export async function startPrometheusEndpoint(options: PrometheusEndpointOptions): Promise<PrometheusEndpoint> {
  const { MeterProvider: SdkMeterProvider, PrometheusExporter } = await loadSdk();
  const host = options.host ?? "127.0.0.1";
  const path = options.path ?? "/metrics";
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new SdkMeterProvider({ readers: [exporter] });
  const server: Server = createServer((req, res) => {
    if ((req.url ?? "").split("?")[0] === path) exporter.getMetricsRequestHandler(req, res);
    else res.writeHead(404, { "content-type": "text/plain" }).end(`not found: metrics are at ${path}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => resolve());
  }).catch(async (err: unknown) => {
    await meterProvider.shutdown();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  return {
    meterProvider,
    port,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}${path}`,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await meterProvider.shutdown();
    },
  };
}
