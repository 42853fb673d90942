import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { RpcError, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { PYTHON, ROOT, eventually, isAlive, testingPool } from "./helpers/env";
import { handlerStarted, recordEvents } from "./helpers/supervision";

test("shutdown: in-flight calls finish, queued and new calls fail FAILED_PRECONDITION, workers go NOT_SERVING → SIGTERM, nothing is left", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, maxInFlightPerWorker: 1 }));
  await pool.start();
  const events = recordEvents(pool);
  const client = pool.client(TestServiceDefinition);
  const { pid, socket } = pool.health().workers[0];
  const inFlight = client.sleep({ ms: 500 });
  const queued = client.echo({ text: "queued" }).catch((e: unknown) => e as RpcError);
  expect(await eventually(() => pool.health().queued === 1 && pool.health().workers[0].inFlight === 1, 20_000)).toBe(true);
  const stopping = pool.shutdown({ graceMs: 3000 });
  expect(pool.shutdown()).toBe(stopping);
  const fresh = (await client.echo({ text: "new" }).catch((e: unknown) => e)) as RpcError;
  expect(fresh.code()).toBe(Status.FAILED_PRECONDITION);
  expect(fresh.details()).toBe("pool is shut down");
  const q = (await queued) as RpcError;
  expect(q.code()).toBe(Status.FAILED_PRECONDITION);
  expect(q.category).toBe("lifecycle");
  expect((await inFlight).completed).toBe(true);
  await stopping;
  expect(isAlive(pid)).toBe(false);
  expect(existsSync(socket)).toBe(false);
  expect(existsSync(dirname(socket))).toBe(false);
  const exit = events.find((e) => e.name === "workerExit")?.payload;
  expect(exit).toMatchObject({ expected: true, code: 0, signal: null }); // SIGTERM was enough: a graceful exit
  expect(events.filter((e) => e.name === "workerState").map((e) => `${String(e.payload.from)}>${String(e.payload.to)}`)).toEqual(["ready>draining", "draining>stopped"]);
  expect(pool.health().workers[0].state).toBe("stopped");
});

test("shutdown SIGKILLs a worker that does not exit within killTimeoutMs", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, killTimeoutMs: 300 }));
  await pool.start();
  const events = recordEvents(pool);
  const { pid } = pool.health().workers[0];
  const runaway = pool.client(TestServiceDefinition).sleep({ ms: 30000, ignoreCancel: true }, { requestId: "runaway-shutdown" }).catch((e: unknown) => e as RpcError);
  await handlerStarted(pool.health().workers[0].socket, "runaway-shutdown");
  await pool.shutdown({ graceMs: 100 });
  expect(isAlive(pid)).toBe(false);
  expect(((await runaway) as RpcError).code()).toBe(Status.UNAVAILABLE);
  expect(events.find((e) => e.name === "workerExit")?.payload).toMatchObject({ expected: true, signal: "SIGKILL" });
});

describe("a later pool using the same socketDir", () => {
  let dir: string;
  let live: Server | undefined;
  beforeEach(() => (dir = mkdtempSync(join("/tmp", "pgss-"))));
  afterEach(async () => {
    await new Promise((r) => (live ? live.close(r) : r(undefined)));
    rmSync(dir, { recursive: true, force: true });
  });

  test("removes stale procgrpc sockets and leaves live sockets and other files alone", async () => {
    // A socket whose process is gone (bound, never unlinked): what a SIGKILLed pool leaves.
    const stale = join(dir, "procgrpc-999999-w0-0.sock");
    const made = spawnSync(PYTHON, ["-c", `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(stale)})`]);
    expect(made.status).toBe(0);
    expect(existsSync(stale)).toBe(true);
    const alive = join(dir, "procgrpc-1-w9-0.sock");
    live = createServer();
    await new Promise<void>((r) => (live as Server).listen(alive, r));
    const pool = new WorkerPool(testingPool({ workers: 1, socketDir: dir }));
    await pool.start();
    try {
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(alive)).toBe(true);
      expect((await pool.client(TestServiceDefinition).echo({ text: "x" })).text).toBe("x");
    } finally {
      await pool.shutdown();
    }
    // The given directory is kept; only the pool's own sockets are removed.
    expect(readdirSync(dir)).toEqual(["procgrpc-1-w9-0.sock"]);
  });
});

test("handleSignals: SIGTERM to the Node process lets the in-flight call finish, stops the workers and re-raises", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "pgsig-"));
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test", "fixtures", "signal-pool.ts")], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: tmp },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  try {
    expect(await eventually(() => out.includes("\n"), 30000)).toBe(true);
    const { workers } = JSON.parse(out.split("\n")[0]) as { workers: { pid: number; socket: string }[] };
    expect(workers.every((w) => isAlive(w.pid))).toBe(true);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once("exit", (code, signal) => r({ code, signal })));
    child.kill("SIGTERM");
    const { signal } = await exited;
    expect(signal).toBe("SIGTERM"); // re-raised after the graceful shutdown
    expect(out).toContain("call completed");
    expect(workers.every((w) => !isAlive(w.pid))).toBe(true);
    expect(workers.every((w) => !existsSync(w.socket))).toBe(true);
    expect(readdirSync(tmp).filter((n) => n.startsWith("procgrpc-"))).toEqual([]); // the socket dir is gone
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(tmp, { recursive: true, force: true });
  }
});
