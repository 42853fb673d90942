// The resilience instruments, scraped after known traffic: retries and why they stopped, a
// method circuit opening, fallbacks, and dead letters from a batch.
import { MemoryDeadLetterStore, observePoolMetrics, startPrometheusEndpoint, WorkerPool, type PrometheusEndpoint } from "../src";
import { ResilienceTestServiceDefinition } from "../src/gen/testing/v1/resilience";
import { resiliencePool, stateDir } from "./helpers/resilience";
import { scrape, valueOf } from "./helpers/scrape";

let endpoint: PrometheusEndpoint;
let pool: WorkerPool;
const dir = stateDir();

beforeAll(async () => {
  endpoint = await startPrometheusEndpoint({ port: 0 });
  pool = new WorkerPool(
    resiliencePool({ workers: 1, retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 5, budget: false }, circuitBreaker: { methods: { consecutiveFailures: 3, halfOpenAfterMs: 60_000 } } }),
  );
  observePoolMetrics(pool, { meterProvider: endpoint.meterProvider });
  await pool.start();
});
afterAll(async () => {
  await pool.shutdown();
  await endpoint.close();
});

test("retries, retry stops, circuit state, fallbacks and dead letters are counted", async () => {
  const client = pool.client(ResilienceTestServiceDefinition, { methods: { flaky: { fallback: () => ({ attempt: 0, workerPid: -1 }) } } });
  // Two retries, then success.
  expect((await client.flaky({ key: "m1", stateDir: dir, failFirst: 2 })).attempt).toBe(3);
  // Fails for good: 2 retries, stops at max-attempts, and the fallback answers. Three failed
  // attempts in a row also open the method's circuit.
  expect(await client.flaky({ key: "m2", stateDir: dir, failFirst: -1 })).toEqual({ attempt: 0, workerPid: -1 });
  // A batch of 10 where every third item fails permanently: 3 dead letters.
  const letters = new MemoryDeadLetterStore();
  const batch = await pool.batch(client.score, Array.from({ length: 10 }, (_, i) => ({ id: i + 1, failEvery: 3 })), { deadLetters: letters });
  expect(batch.failed).toHaveLength(3);

  const s = await scrape(endpoint.url);
  const flaky = "testing.v1.ResilienceTestService/Flaky";
  expect(valueOf(s, "procgrpc_client_retries_total", { rpc_method: flaky, procgrpc_retry_delay_source: "backoff" })).toBe(4);
  expect(valueOf(s, "procgrpc_client_retry_stops_total", { rpc_method: flaky, procgrpc_retry_stop_reason: "max-attempts" })).toBe(1);
  expect(valueOf(s, "procgrpc_client_fallbacks_total", { rpc_method: flaky, error_type: "UNAVAILABLE" })).toBe(1);
  expect(valueOf(s, "procgrpc_client_circuit_state", { procgrpc_circuit_scope: "method", procgrpc_circuit_key: `/${flaky}`, procgrpc_circuit_state: "open" })).toBe(1);
  expect(valueOf(s, "procgrpc_client_circuit_state", { procgrpc_circuit_scope: "method", procgrpc_circuit_key: `/${flaky}`, procgrpc_circuit_state: "closed" })).toBe(0);
  expect(valueOf(s, "procgrpc_batch_dead_letters_total", { rpc_method: "testing.v1.ResilienceTestService/Score", error_type: "INVALID_ARGUMENT" })).toBe(3);
  expect(pool.resilience.counters()).toMatchObject({ retries: 4, retriesExhausted: 1, fallbacks: 1, deadLetters: 3, circuitsOpened: 1 });
});
