import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { jsonLogger } from "../core/logger";
import { WorkerPool } from "../pool/worker-pool";
import { observePoolMetrics } from "../observability/pool-metrics";
import { startPrometheusEndpoint, type PrometheusEndpoint } from "../observability/prometheus-endpoint";
import { POOL_FLAGS, POOL_FLAGS_USAGE, poolOptionsFromFlags } from "./pool-flags";
import { ADMIN_COMMANDS, readAdminLines, runAdminCommand, startControlSocket, type AdminReply, type ControlSocket } from "./serve-admin";
import { intFlag, usageError } from "./usage-error";

/** `procgrpc serve --help`. */
export const SERVE_USAGE = `Usage: procgrpc serve (--script <file> | --module <name>) [--workers <n|min-max>] [--python <path>] [options]

Runs a pool of Python workers in the foreground and prints each worker's socket (ready for
grpcurl or procgrpc call --socket) and every state change. Ctrl-C or SIGTERM shuts it down
gracefully (in-flight calls finish, workers drain, sockets are removed). Admin commands
(kill switches, circuits, status) are read from stdin, and from --control if given.

${POOL_FLAGS_USAGE}
                      (serve also takes --workers <min>-<max>: autoscale between the two)
  --spares <n>        Warm spares: workers kept SERVING out of rotation (default 0)
  --control <path>    Also take admin commands on this Unix socket (mode 0600; one JSON reply a line)
  --watch             Reload while developing: when the worker's .py files change (under the
                      script's or the module's directory), replace the workers one at a time,
                      each new one SERVING before the old one drains; a broken edit leaves the
                      old workers serving and logs why on stderr
  --watch-path <p>    Watch this file or directory instead (repeatable; implies --watch)
  --metrics-port <p>  Serve Prometheus metrics on http://<host>:<p>/metrics (0: any free port)
  --metrics-host <h>  Address for the metrics endpoint (default 127.0.0.1)
  --json              JSON lines on stdout instead of text (worker logs stay on stderr)
  -h, --help          This text

${ADMIN_COMMANDS}

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
      options: {
        ...POOL_FLAGS,
        watch: { type: "boolean" },
        "watch-path": { type: "string", multiple: true },
        "metrics-port": { type: "string" },
        "metrics-host": { type: "string" },
        spares: { type: "string" },
        control: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    throw usageError((e as Error).message, SERVE_USAGE);
  }
  if (values.help) {
    out(SERVE_USAGE);
    return 0;
  }
  // `--workers 1-4`: autoscaling bounds (the shared pool flags take a count).
  const range = /^(\d+)-(\d+)$/.exec(values.workers ?? "");
  const options = poolOptionsFromFlags({ ...values, workers: range ? undefined : values.workers }, SERVE_USAGE);
  if (range) {
    const [min, max] = [Number(range[1]), Number(range[2])];
    if (max < 1 || min > max) throw usageError(`--workers ${values.workers}: give <min>-<max> with min <= max and max >= 1`, SERVE_USAGE);
    options.workers = { min, max };
  }
  const spares = intFlag("spares", values.spares, SERVE_USAGE, 0);
  const watchPaths = values["watch-path"];
  for (const p of watchPaths ?? []) if (!existsSync(p)) throw usageError(`--watch-path ${p}: no such file or directory`, SERVE_USAGE);
  const watch = watchPaths ? { paths: watchPaths } : values.watch === true;
  const metricsPort = intFlag("metrics-port", values["metrics-port"], SERVE_USAGE, 0);
  const json = values.json === true;
  const emit = (event: string, fields: Record<string, unknown>, text: string): void => {
    out(json ? `${JSON.stringify({ event, time: new Date().toISOString(), ...fields })}\n` : `${text}\n`);
  };

  const pool = new WorkerPool({ ...options, spares, watch, logger: jsonLogger("info", err) });
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
  pool.on("workerRecycled", (e) => emit("workerRecycled", e, `${e.workerId} replaced (${e.reason}): pid ${e.oldPid} -> ${e.newPid}`));
  pool.on("degraded", (e) => emit("degraded", e, `DEGRADED: ${e.workerId} is crash-looping; ${e.ready}/${e.total} ready`));
  pool.on("recovered", (e) => emit("recovered", e, `recovered: ${e.workerId}; ${e.ready}/${e.total} ready`));
  pool.on("scale", (e) => emit("scale", e, `scale ${e.direction} (${e.reason}): ${e.from} -> ${e.to} workers [${e.workerIds.join(", ")}]`));
  pool.on("sparePromoted", (e) => emit("sparePromoted", e, `spare ${e.workerId} in rotation${e.replaced ? ` in place of ${e.replaced}` : ""} (${e.reason})`));
  pool.on("switched", (e) => emit("switched", e, `${e.target} switched ${e.on ? "on" : "off"}`));
  pool.on("workerDrained", (e) => emit("workerDrained", e, `${e.workerId} drained out (pid ${e.pid}); ${e.remaining} in rotation`));
  const admin = async (line: string): Promise<AdminReply> => {
    const reply = await runAdminCommand(pool, line);
    const text = reply.ok ? `ok: ${reply.command}${reply.result === undefined ? "" : `\n${typeof reply.result === "string" ? reply.result : JSON.stringify(reply.result, null, 2)}`}` : `error: ${reply.command}: ${reply.error}`;
    emit("admin", { ...reply }, text);
    return reply;
  };

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
  let control: ControlSocket | undefined;
  if (values.control) {
    try {
      control = await startControlSocket(values.control, admin);
    } catch (e) {
      err(`procgrpc serve: ${(e as Error).message}\n`);
      await pool.shutdown();
      await metrics?.close();
      return 1;
    }
  }
  const stopReading = readAdminLines(process.stdin, async (line) => void (await admin(line)));
  const workers = pool.health().workers.map((w) => ({ workerId: w.id, pid: w.pid, socket: w.socket, state: w.state }));
  emit(
    "ready",
    { workers, spares: pool.health().spares.map((w) => ({ workerId: w.id, pid: w.pid, socket: w.socket, state: w.state })), scaling: pool.health().scaling, metrics: metrics?.url, control: control?.path, watch: watch !== false },
    [
      `procgrpc serve: ${workers.length} worker(s) ready`,
      ...workers.map((w) => `  ${w.workerId}  pid ${w.pid}  ${w.socket}`),
      ...(metrics ? [`metrics: ${metrics.url}`] : []),
      ...(control ? [`admin commands: stdin and ${control.path}`] : ["admin commands: stdin (type help)"]),
      ...(watch ? ["watching for changes: workers reload when their files change"] : []),
      "Ctrl-C to stop.",
    ].join("\n"),
  );
  const signal = await stopped;
  emit("stopping", { signal }, `${signal}: shutting down`);
  stopReading();
  await control?.close();
  await pool.shutdown();
  await metrics?.close();
  emit("stopped", {}, "stopped");
  return 0;
}
