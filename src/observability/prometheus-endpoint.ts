import type { Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { MeterProvider } from "@opentelemetry/api";
import { loadOnUse } from "../core/load-on-use";

// node:http is for the scrape endpoint only: not loaded by `import "procgrpc"`.
const http = loadOnUse<typeof import("node:http")>("node:http");

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

/** The package this needs: an optional peer dependency of procgrpc, installed by the application. */
const EXPORTER = "@opentelemetry/exporter-prometheus";

type SdkMetrics = typeof import("@opentelemetry/sdk-metrics");
type Exporter = typeof import("@opentelemetry/exporter-prometheus");

/**
 * Loads the exporter, and the metrics SDK the exporter itself depends on (resolved from the
 * exporter's own directory), on first use only: they cost most of procgrpc's import time, and
 * taking the exporter's SDK means one copy of each OpenTelemetry package whatever else the
 * application has installed (the exporter pins exact SDK versions).
 */
function loadSdk(): { MeterProvider: SdkMetrics["MeterProvider"]; PrometheusExporter: Exporter["PrometheusExporter"] } {
  for (const base of [__filename, join(process.cwd(), "package.json")]) {
    const fromHere = createRequire(base);
    let exporterPath: string;
    try {
      exporterPath = fromHere.resolve(EXPORTER);
    } catch {
      continue; // not installed where this base looks; try the next
    }
    const { PrometheusExporter } = fromHere(EXPORTER) as Exporter;
    const { MeterProvider } = createRequire(exporterPath)("@opentelemetry/sdk-metrics") as SdkMetrics;
    return { MeterProvider, PrometheusExporter };
  }
  throw new Error(`startPrometheusEndpoint needs ${EXPORTER} (an optional peer dependency of procgrpc; it brings the metrics SDK): npm install ${EXPORTER}`);
}

/**
 * Serves procgrpc's metrics for Prometheus to scrape, with the OpenTelemetry SDK's Prometheus
 * exporter (it translates names: `rpc.client.call.duration` in seconds becomes
 * `rpc_client_call_duration_seconds`). `procgrpc serve --metrics-port` uses this.
 * Needs `@opentelemetry/exporter-prometheus` installed (it brings `@opentelemetry/sdk-metrics`);
 * rejects with an Error that says so when it is not.
 */
export async function startPrometheusEndpoint(options: PrometheusEndpointOptions): Promise<PrometheusEndpoint> {
  const { MeterProvider: SdkMeterProvider, PrometheusExporter } = loadSdk();
  const host = options.host ?? "127.0.0.1";
  const path = options.path ?? "/metrics";
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new SdkMeterProvider({ readers: [exporter] });
  const server: Server = http().createServer((req, res) => {
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
