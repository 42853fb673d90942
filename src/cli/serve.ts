import { parseArgs } from "node:util";
import { jsonLogger } from "../core/logger";
import { WorkerPool } from "../pool/worker-pool";
import { observePoolMetrics } from "../observability/pool-metrics";
import { startPrometheusEndpoint, type PrometheusEndpoint } from "../observability/prometheus-endpoint";
import { POOL_FLAGS, POOL_FLAGS_USAGE, poolOptionsFromFlags } from "./pool-flags";
import { intFlag, usageError } from "./usage-error";

/** `procgrpc serve --help`. */
export const SERVE_USAGE = `Usage: procgrpc serve (--script <file> | --module <name>) [--workers <n>] [--python <path>] [options]

Runs a pool of Python workers in the foreground and prints each worker's socket (ready for
grpcurl or procgrpc call --socket) and every state change. Ctrl-C or SIGTERM shuts it down
gracefully (in-flight calls finish, workers drain, sockets are removed).

${POOL_FLAGS_USAGE}
  --metrics-port <p>  Serve Prometheus metrics on http://<host>:<p>/metrics (0: any free port)
  --metrics-host <h>  Address for the metrics endpoint (default 127.0.0.1)
  --json              JSON lines on stdout instead of text (worker logs stay on stderr)
  -h, --help          This text

Exit codes: 0 after a clean shutdown, 1 when the pool could not start, 2 bad usage.
`;

type Out = (s: string) => void;

/** Runs `procgrpc serve` until SIGINT/SIGTERM; resolves with the exit code. */
export async function serveCommand(args: readonly string[], out: Out, err: Out): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      options: { ...POOL_FLAGS, "metrics-port": { type: "string" }, "metrics-host": { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    }));
  } catch (e) {
    throw usageError((e as Error).message, SERVE_USAGE);
  }
  if (values.help) {
    out(SERVE_USAGE);
    return 0;
  }
  const options = poolOptionsFromFlags(values, SERVE_USAGE);
  const metricsPort = intFlag("metrics-port", values["metrics-port"], SERVE_USAGE, 0);
  const json = values.json === true;
  const emit = (event: string, fields: Record<string, unknown>, text: string): void => {
    out(json ? `${JSON.stringify({ event, time: new Date().toISOString(), ...fields })}\n` : `${text}\n`);
  };

  const pool = new WorkerPool({ ...options, logger: jsonLogger("info", err) });
  let metrics: PrometheusEndpoint | undefined;
  if (metricsPort !== undefined) {
    metrics = await startPrometheusEndpoint({ port: metricsPort, host: values["metrics-host"] });
    observePoolMetrics(pool, { meterProvider: metrics.meterProvider });
  }
  let started = false;
  pool.on("workerState", (e) => {
    if (started) emit("workerState", e, `${e.workerId} ${e.from} -> ${e.to}${e.pid ? ` (pid ${e.pid})` : ""}`);
  });
  pool.on("workerReady", (e) => {
    if (started) emit("workerReady", e, `${e.workerId} ready: pid ${e.pid} socket ${e.socket}`);
  });
  pool.on("workerExit", (e) => {
    if (started) emit("workerExit", { ...e, stderrTail: e.stderrTail.slice(-5) }, `${e.workerId} exited (pid ${e.pid}, ${e.signal ? `signal ${e.signal}` : `code ${e.code}`}${e.expected ? "" : ", unexpected"})`);
  });
  pool.on("workerRestart", (e) => {
    if (started) emit("workerRestart", e, `${e.workerId} restarting in ${e.delayMs} ms (attempt ${e.attempt}, ${e.reason})`);
  });
  pool.on("degraded", (e) => emit("degraded", e, `DEGRADED: ${e.workerId} is crash-looping; ${e.ready}/${e.total} ready`));
  pool.on("recovered", (e) => emit("recovered", e, `recovered: ${e.workerId}; ${e.ready}/${e.total} ready`));

  const stopped = new Promise<string>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  try {
    await pool.start();
  } catch (e) {
    await metrics?.close();
    err(`procgrpc serve: ${(e as Error).message}\n`);
    return 1;
  }
  started = true;
  const workers = pool.health().workers.map((w) => ({ workerId: w.id, pid: w.pid, socket: w.socket, state: w.state }));
  emit(
    "ready",
    { workers, metrics: metrics?.url },
    [
      `procgrpc serve: ${workers.length} worker(s) ready`,
      ...workers.map((w) => `  ${w.workerId}  pid ${w.pid}  ${w.socket}`),
      ...(metrics ? [`metrics: ${metrics.url}`] : []),
      "Ctrl-C to stop.",
    ].join("\n"),
  );
  const signal = await stopped;
  emit("stopping", { signal }, `${signal}: shutting down`);
  await pool.shutdown();
  await metrics?.close();
  emit("stopped", {}, "stopped");
  return 0;
}
