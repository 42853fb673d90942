import { metricsMiddleware, observePoolMetrics, RemotePool, silentLogger, startPrometheusEndpoint, Status, WorkerPool, type PrometheusEndpoint } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, testingPool } from "./helpers/env";
import { scrape, valueOf } from "./helpers/scrape";

let endpoint: PrometheusEndpoint;
let pool: WorkerPool;

beforeAll(async () => {
  endpoint = await startPrometheusEndpoint({ port: 0 });
  const { meterProvider } = endpoint;
  pool = new WorkerPool(testingPool({ workers: 2, maxInFlightPerWorker: 1, middleware: [metricsMiddleware({ meterProvider, semconv: "both" })] }));
  observePoolMetrics(pool, { meterProvider });
  await pool.start();
});
afterAll(async () => {
  await pool.shutdown();
  await endpoint.close();
});

test("after a scripted mix of successes and failures the scrape shows each count by method and status", async () => {
  const testing = pool.client(TestServiceDefinition);
  for (let i = 0; i < 5; i++) await testing.echo({ text: `${i}` });
  for (let i = 0; i < 3; i++) await testing.fail({ code: Status.NOT_FOUND, details: "nope" }).catch(() => undefined);
  await testing.fail({ code: Status.INVALID_ARGUMENT, details: "bad" }).catch(() => undefined);
  await testing.sleep({ ms: 10 }, { timeoutMs: 1 }).catch(() => undefined);
  // Six sleeps on two workers that take one call each: four of them wait in the queue.
  await Promise.all(Array.from({ length: 6 }, () => testing.sleep({ ms: 100 })));

  const s = await scrape(endpoint.url);
  const current = (method: string, code: string) => valueOf(s, "rpc_client_call_duration_count", { rpc_method: `testing.v1.TestService/${method}`, rpc_response_status_code: code, rpc_system_name: "grpc" });
  expect(current("Echo", "OK")).toBe(5);
  expect(current("Fail", "NOT_FOUND")).toBe(3);
  expect(current("Fail", "INVALID_ARGUMENT")).toBe(1);
  expect(current("Sleep", "DEADLINE_EXCEEDED")).toBe(1);
  expect(current("Sleep", "OK")).toBe(6);
  expect(valueOf(s, "rpc_client_call_duration_count", { rpc_response_status_code: "NOT_FOUND" })).toBe(3);
  expect(s.find((x) => x.name === "rpc_client_call_duration_count" && x.labels.rpc_response_status_code === "NOT_FOUND")?.labels.error_type).toBe("NOT_FOUND");
  // Every OK Echo took more than 0 s and is in the +Inf bucket.
  expect(valueOf(s, "rpc_client_call_duration_sum", { rpc_method: "testing.v1.TestService/Echo", rpc_response_status_code: "OK" })).toBeGreaterThan(0);
  expect(valueOf(s, "rpc_client_call_duration_bucket", { rpc_method: "testing.v1.TestService/Echo", rpc_response_status_code: "OK", le: "+Inf" })).toBe(5);

  // The v1.37 conventions: rpc.service, rpc.method, rpc.grpc.status_code, in ms.
  const legacy = (method: string, code: number) => valueOf(s, "rpc_client_duration_count", { rpc_service: "testing.v1.TestService", rpc_method: method, rpc_grpc_status_code: String(code), rpc_system: "grpc" });
  expect(legacy("Echo", 0)).toBe(5);
  expect(legacy("Fail", 5)).toBe(3);
  expect(legacy("Fail", 3)).toBe(1);

  expect(valueOf(s, "procgrpc_pool_workers", { procgrpc_worker_state: "ready" })).toBe(2);
  expect(valueOf(s, "procgrpc_pool_calls_in_flight")).toBe(0);
  expect(valueOf(s, "procgrpc_pool_queue_depth")).toBe(0);
  expect(valueOf(s, "procgrpc_pool_queue_wait_time_count")).toBe(4);
  expect(valueOf(s, "procgrpc_pool_worker_memory_rss", { procgrpc_worker_id: "w0" })).toBeGreaterThan(1024 * 1024);
});

test("in-flight calls and queue depth are observed live; a killed worker shows up as a restart and a non-ready state", async () => {
  const testing = pool.client(TestServiceDefinition);
  const running = Array.from({ length: 3 }, () => testing.sleep({ ms: 1500 }));
  expect(await eventually(() => pool.health().queued === 1, 5000)).toBe(true);
  let s = await scrape(endpoint.url);
  expect(valueOf(s, "procgrpc_pool_calls_in_flight")).toBe(2);
  expect(valueOf(s, "procgrpc_pool_queue_depth")).toBe(1);
  await Promise.all(running);

  const victim = pool.health().workers[1];
  process.kill(victim.pid as number, "SIGKILL");
  expect(await eventually(() => pool.health().workers[1].restarts === 1 && pool.health().workers[1].state !== "ready", 5000)).toBe(true);
  s = await scrape(endpoint.url);
  expect(valueOf(s, "procgrpc_pool_workers", { procgrpc_worker_state: "ready" })).toBe(1);
  // Prometheus counters get the `_total` suffix from the exporter.
  expect(valueOf(s, "procgrpc_pool_worker_restarts_total", { procgrpc_worker_id: "w1", procgrpc_restart_reason: "exit" })).toBe(1);
  expect(await eventually(() => pool.health().ready === 2, 15000)).toBe(true);
  s = await scrape(endpoint.url);
  expect(valueOf(s, "procgrpc_pool_workers", { procgrpc_worker_state: "ready" })).toBe(2);
});

test("a RemotePool's metrics: targets by channel state, calls in flight, its calls by method and status", async () => {
  const remoteEndpoint = await startPrometheusEndpoint({ port: 0 });
  const { meterProvider } = remoteEndpoint;
  const socket = pool.health().workers[0].socket;
  const remote = new RemotePool({ targets: [`unix:${socket}`], healthCheckIntervalMs: 0, logger: silentLogger, middleware: [metricsMiddleware({ meterProvider })] });
  const handle = observePoolMetrics(remote, { meterProvider });
  await remote.start();
  try {
    const testing = remote.client(TestServiceDefinition);
    await testing.echo({ text: "remote" });
    const slow = testing.sleep({ ms: 800 });
    expect(await eventually(() => remote.health().targets[0].inFlight === 1, 5000)).toBe(true);
    let s = await scrape(remoteEndpoint.url);
    expect(valueOf(s, "procgrpc_pool_calls_in_flight")).toBe(1);
    expect(valueOf(s, "procgrpc_pool_workers", { procgrpc_worker_state: "READY" })).toBe(1);
    expect(valueOf(s, "procgrpc_pool_queue_depth")).toBe(0);
    await slow;
    s = await scrape(remoteEndpoint.url);
    expect(valueOf(s, "rpc_client_call_duration_count", { rpc_method: "testing.v1.TestService/Echo", rpc_response_status_code: "OK" })).toBe(1);
    expect(valueOf(s, "procgrpc_pool_calls_in_flight")).toBe(0);
  } finally {
    handle.stop();
    await remote.shutdown();
    await remoteEndpoint.close();
  }
});
