import { type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { credentials, Client } from "@grpc/grpc-js";
import { RpcError, Status, WorkerPool, WorkerStartError, isLifecycleError } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { HealthCheckRequest, HealthCheckResponse, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health";
import { checkHealth } from "../src/transport/health-check";
import { WORKERS, eventually, isAlive, pidsMatching, testingPool } from "./helpers/env";
import { HOSTILE_WORKER, groupMembers } from "./helpers/hostile";
import { startHolder } from "./helpers/holder";
import { untilAsync } from "./helpers/wait";

// Each test gets its own TMPDIR so that "no socket directory left behind" is checkable.
let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), "pgt-"));
  process.env.TMPDIR = tmp;
});
afterEach(() => {
  delete process.env.TMPDIR;
  rmSync(tmp, { recursive: true, force: true });
});

async function expectStartFailure(pool: WorkerPool): Promise<WorkerStartError> {
  const err = await pool.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkerStartError);
  // Nothing is left behind: no socket directory, and the pool is stopped.
  expect(readdirSync(tmp)).toEqual([]);
  expect(pool.state).toBe("stopped");
  return err as WorkerStartError;
}

describe("start() failures reject with the worker, the command and the stderr tail, and leave nothing", () => {
  test("missing python", async () => {
    const err = await expectStartFailure(new WorkerPool(testingPool({ python: "/nonexistent/bin/python3" })));
    expect(err.message).toMatch(/worker w\d failed to start: could not run \/nonexistent\/bin\/python3/);
    expect(err.message).toContain("PROCGRPC_PYTHON");
    expect(err.command).toContain("testing_worker.py");
  });

  test("ImportError in the worker script", async () => {
    const err = await expectStartFailure(new WorkerPool(testingPool({ script: join(WORKERS, "import_error_worker.py") })));
    expect(err.message).toContain("process exited before it was ready (exit code 1)");
    expect(err.stderrTail.join("\n")).toContain("ModuleNotFoundError");
    expect(err.message).toContain("ModuleNotFoundError");
  });

  test("a script that exits at once", async () => {
    const err = await expectStartFailure(new WorkerPool(testingPool({ workers: 1, script: join(WORKERS, "exit_at_once_worker.py") })));
    expect(err.exitCode).toBe(7);
    expect(err.stderrTail.join("\n")).toContain("exiting on purpose");
  });

  test("a worker that never becomes ready is killed at startTimeoutMs", async () => {
    const pool = new WorkerPool(testingPool({ workers: 2, script: join(WORKERS, "hang_on_start_worker.py"), startTimeoutMs: 1500 }));
    const err = await expectStartFailure(pool);
    expect(err.message).toContain("not SERVING within startTimeoutMs (1500 ms)");
    expect(pidsMatching("hang_on_start_worker.py")).toEqual([]);
  });

  test("when one of two workers fails, the one that started is stopped too", async () => {
    const pool = new WorkerPool(testingPool({ workers: 2, script: join(WORKERS, "fail_second_worker.py") }));
    const err = await expectStartFailure(pool);
    expect(err.workerId).toBe("w1");
    expect(pidsMatching("fail_second_worker.py")).toEqual([]);
  });
});

test("a socket path over the Unix limit is an error at construction", () => {
  const longDir = join(tmp, "x".repeat(120));
  expect(() => new WorkerPool(testingPool({ socketDir: longDir }))).toThrow(/over the Unix limit of 107.*shorter socketDir/);
});

test("options are validated at construction", () => {
  expect(() => new WorkerPool({ python: "python3" } as never)).toThrow(/exactly one of `script`/);
  expect(() => new WorkerPool(testingPool({ workers: 0 }))).toThrow(/workers must be an integer >= 1/);
});

test("calls before start() and after shutdown() fail with FAILED_PRECONDITION", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1 }));
  const client = pool.client(TestServiceDefinition);
  const before = (await client.echo({}).catch((e: unknown) => e)) as RpcError;
  expect(before.code()).toBe(Status.FAILED_PRECONDITION);
  expect(before.details()).toBe("pool is not started: await pool.start() before calling");
  expect(isLifecycleError(before)).toBe(true);
  await pool.start();
  await pool.shutdown();
  const after = (await client.echo({}).catch((e: unknown) => e)) as RpcError;
  expect(after.code()).toBe(Status.FAILED_PRECONDITION);
  expect(after.details()).toBe("pool is shut down");
  expect(after.retryable).toBe(false);
});

test("shutdown lets in-flight calls finish, then leaves no process, socket or directory", async () => {
  const pool = new WorkerPool(testingPool({ workers: 2 }));
  await pool.start();
  const client = pool.client(TestServiceDefinition);
  const workers = pool.health().workers;
  const calls = Array.from({ length: 4 }, () => client.sleep({ ms: 400 }));
  expect(await eventually(() => pool.health().workers.reduce((n, w) => n + w.inFlight, 0) === 4, 20_000)).toBe(true);
  const first = pool.shutdown();
  expect(pool.shutdown()).toBe(first); // concurrent calls share one result
  const replies = await Promise.all(calls);
  expect(replies.every((r) => r.completed)).toBe(true);
  await first;
  for (const w of workers) {
    expect(isAlive(w.pid)).toBe(false);
    expect(existsSync(w.socket)).toBe(false);
  }
  expect(existsSync(dirname(workers[0].socket))).toBe(false);
  await pool.shutdown(); // idempotent
});

test("a worker reports NOT_SERVING while it drains at shutdown", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, killTimeoutMs: 20_000 }));
  await pool.start();
  const { socket } = pool.health().workers[0];
  const probe = new Client(`unix:${socket}`, credentials.createInsecure());
  // A health Watch opened before the shutdown (as a load balancer's would be) sees every change;
  // new connections are refused once the worker drains, so polling Check could miss it.
  const statuses: string[] = [];
  const watch = probe.makeServerStreamRequest(
    "/grpc.health.v1.Health/Watch",
    (req: HealthCheckRequest) => Buffer.from(HealthCheckRequest.encode(req).finish()),
    (bytes: Buffer) => HealthCheckResponse.decode(bytes),
    { service: "" },
    { deadline: new Date(Date.now() + 60_000) },
  );
  watch.on("data", (res: HealthCheckResponse) => statuses.push(HealthCheckResponse_ServingStatus[res.status] ?? "UNKNOWN"));
  watch.on("error", () => undefined); // ends with the worker
  try {
    expect(await eventually(() => statuses.includes("SERVING"), 20_000)).toBe(true);
    // The call keeps the worker draining; the drain grace (killTimeoutMs minus 1 s) is far longer.
    const longCall = pool.client(TestServiceDefinition).sleep({ ms: 2000 }, { timeoutMs: 20_000 });
    expect(await eventually(() => pool.health().workers[0].inFlight === 1, 20_000)).toBe(true);
    const stopping = pool.shutdown({ graceMs: 0 });
    expect(await eventually(() => statuses.includes("NOT_SERVING"), 20_000)).toBe(true);
    expect((await longCall).completed).toBe(true);
    await stopping;
    expect(statuses.slice(-1)).toEqual(["NOT_SERVING"]);
  } finally {
    watch.cancel();
    probe.close();
  }
});

test("two pools never collide on sockets", async () => {
  const a = new WorkerPool(testingPool({ workers: 2 }));
  const b = new WorkerPool(testingPool({ workers: 2 }));
  await Promise.all([a.start(), b.start()]);
  try {
    const sockets = [...a.health().workers, ...b.health().workers].map((w) => w.socket);
    expect(new Set(sockets).size).toBe(4);
    const [ra, rb] = await Promise.all([a.client(TestServiceDefinition).echo({ text: "a" }), b.client(TestServiceDefinition).echo({ text: "b" })]);
    expect(a.health().workers.map((w) => w.pid)).toContain(ra.workerPid);
    expect(b.health().workers.map((w) => w.pid)).toContain(rb.workerPid);
  } finally {
    await Promise.all([a.shutdown(), b.shutdown()]);
  }
});

/** Starts test/fixtures/pool-holder.ts with `env`; resolves with the workers it prints first. */
async function startPoolHolder(env: Record<string, string>): Promise<{ holder: ChildProcess; workers: { pid: number; socket: string }[]; children: number[] }> {
  const { holder, line } = await startHolder("pool-holder.ts", { TMPDIR: tmp, ...env });
  return { holder, ...(JSON.parse(line) as { workers: { pid: number; socket: string }[]; children: number[] }) };
}

/** Everything a dead pool leaves must go: workers, their process groups, sockets, the directory. */
async function expectNothingLeft(workers: { pid: number; socket: string }[], children: number[]): Promise<void> {
  // Generous deadlines bound a failure only; the measured time is in docs/supervision.md.
  expect(await eventually(() => workers.every((w) => !isAlive(w.pid)), 20_000)).toBe(true);
  expect(await eventually(() => workers.every((w) => groupMembers(w.pid).length === 0) && children.every((pid) => !isAlive(pid)), 20_000)).toBe(true);
  expect(await eventually(() => workers.every((w) => !existsSync(w.socket)), 20_000)).toBe(true);
  expect(await eventually(() => !existsSync(dirname(workers[0].socket)), 20_000)).toBe(true);
  expect(readdirSync(tmp).filter((n) => n.startsWith("procgrpc-"))).toEqual([]);
}

test("after the Node process is SIGKILLed its workers, sockets and socket directory are gone", async () => {
  const { holder, workers } = await startPoolHolder({});
  expect(workers.every((w) => isAlive(w.pid))).toBe(true);
  holder.kill("SIGKILL");
  await expectNothingLeft(workers, []);
});

describe.each([
  ["", {}],
  [" (portable path: no PR_SET_PDEATHSIG)", { PROCGRPC_PORTABLE: "1" }],
])("after the Node process is SIGKILLed while the servicers misbehave%s", (_name, extra) => {
  test("a blocked event loop, an endless def handler and the servicers' subprocesses go too", async () => {
    const { holder, workers, children } = await startPoolHolder({ HOLDER_SCRIPT: HOSTILE_WORKER, HOLDER_HOSTILE: "1", ...extra });
    expect(children.every((pid) => isAlive(pid))).toBe(true);
    // One worker's loop stops answering; the other's thread is in the endless handler.
    expect(await untilAsync(async () => (await Promise.all(workers.map((w) => health(w.socket, 300)))).filter((h) => h === "timeout").length === 1, 20_000)).toBe(true);
    holder.kill("SIGKILL");
    await expectNothingLeft(workers, children);
  });
});

async function health(socket: string, timeoutMs: number): Promise<string> {
  const probe = new Client(`unix:${socket}`, credentials.createInsecure());
  try {
    return await checkHealth(probe, new Date(Date.now() + timeoutMs));
  } catch {
    return "timeout";
  } finally {
    probe.close();
  }
}
