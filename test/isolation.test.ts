// Pools sharing a socket directory, leftovers of dead pools, and the environment local workers get.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { Client, credentials } from "@grpc/grpc-js";
import { WorkerPool, WorkerStartError, jsonLogger } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { checkHealth } from "../src/transport/health-check";
import { CONTROL_VARIABLES } from "../src/pool/worker-process";
import { removeStaleSockets, sweepDeadPoolDirs } from "../src/pool/socket-dir";
import { PYTHON, WORKERS, eventually, testingPool } from "./helpers/env";
import { startHolder } from "./helpers/holder";
import { HOSTILE_WORKER, hostile } from "./helpers/hostile";

jest.setTimeout(120_000);

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join("/tmp", "pgi-"));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

async function serving(socket: string): Promise<string> {
  const probe = new Client(`unix:${socket}`, credentials.createInsecure());
  try {
    return await checkHealth(probe, new Date(Date.now() + 5000));
  } finally {
    probe.close();
  }
}

describe("pools sharing a socketDir", () => {
  test("two pools in one process run side by side, and a failed start of a third touches neither", async () => {
    const dir = join(tmp, "shared");
    const a = new WorkerPool(testingPool({ workers: 2, socketDir: dir }));
    const b = new WorkerPool(testingPool({ workers: 2, socketDir: dir }));
    await Promise.all([a.start(), b.start()]);
    try {
      const sockets = [...a.health().workers, ...b.health().workers].map((w) => w.socket);
      expect(new Set(sockets).size).toBe(4);
      const broken = new WorkerPool(testingPool({ workers: 2, socketDir: dir, script: join(WORKERS, "fail_second_worker.py") }));
      await expect(broken.start()).rejects.toBeInstanceOf(WorkerStartError);
      for (const socket of sockets) {
        expect(existsSync(socket)).toBe(true);
        expect(await serving(socket)).toBe("SERVING");
      }
      const [ra, rb] = await Promise.all([a.client(TestServiceDefinition).echo({ text: "a" }), b.client(TestServiceDefinition).echo({ text: "b" })]);
      expect([ra.text, rb.text]).toEqual(["a", "b"]);
    } finally {
      await Promise.all([a.shutdown(), b.shutdown()]);
    }
    // Each pool removed its own sockets; the given directory stays.
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a pool in another process shares the directory; its sockets survive this process's pools starting, failing and stopping", async () => {
    const dir = join(tmp, "shared");
    mkdirSync(dir);
    const { holder, line } = await startHolder("pool-holder.ts", { HOLDER_SOCKET_DIR: dir });
    try {
      const { workers } = JSON.parse(line) as { workers: { pid: number; socket: string }[] };
      const ours = new WorkerPool(testingPool({ workers: 2, socketDir: dir }));
      await ours.start();
      await ours.shutdown();
      const broken = new WorkerPool(testingPool({ workers: 1, socketDir: dir, script: join(WORKERS, "exit_at_once_worker.py") }));
      await expect(broken.start()).rejects.toBeInstanceOf(WorkerStartError);
      for (const w of workers) expect(await serving(w.socket)).toBe("SERVING");
    } finally {
      holder.kill("SIGKILL");
    }
  });
});

describe("leftovers of a dead pool are swept by the next pool, and only those", () => {
  test("sockets in a given socketDir whose owner process is gone", async () => {
    const dir = join(tmp, "given");
    mkdirSync(dir);
    const dead = await deadPid();
    // A dead pool's socket file (nobody listens) and a live process's (this one's) in the same place.
    const stale = join(dir, `procgrpc-${dead}-abc123-w0-0.sock`);
    const live = join(dir, `procgrpc-${process.pid}-def456-w0-0.sock`);
    await Promise.all([stale, live].map(socketFile));
    expect(await removeStaleSockets(dir)).toEqual([stale]);
    expect(existsSync(live)).toBe(true);
  });

  test("default socket directories whose owner process is gone", async () => {
    const dead = await deadPid();
    const leftover = join(tmp, `procgrpc-${dead}-AbC123`);
    const alive = join(tmp, `procgrpc-${process.pid}-XyZ789`);
    const foreign = join(tmp, `procgrpc-${dead}-KeepMe`);
    for (const d of [leftover, alive, foreign]) mkdirSync(d);
    await socketFile(join(leftover, `procgrpc-${dead}-aaaaaa-w0-0.sock`));
    writeFileSync(join(foreign, "not-a-socket.txt"), "kept"); // anything else keeps a directory
    expect(sweepDeadPoolDirs(tmp)).toEqual([leftover]);
    expect(existsSync(alive) && existsSync(foreign)).toBe(true);
  });
});

describe("the environment of local workers", () => {
  const names = [...CONTROL_VARIABLES, "PROCGRPC_DEBUG", "PROCGRPC_USER_SETTING", "MY_APP_SETTING"];
  const saved: Record<string, string | undefined> = {};
  beforeEach(() => {
    for (const n of names) saved[n] = process.env[n];
  });
  afterEach(() => {
    for (const n of names) {
      if (saved[n] === undefined) delete process.env[n];
      else process.env[n] = saved[n];
    }
  });

  test("procgrpc's control variables are not inherited from Node's environment (a PROCGRPC_LISTEN there used to break a 2-worker pool); the user's are", async () => {
    const port = await freePort();
    process.env.PROCGRPC_LISTEN = `127.0.0.1:${port}`;
    process.env.PROCGRPC_TOKEN = "from-node-env";
    process.env.PROCGRPC_TLS_CERT = "/nonexistent/cert.pem";
    process.env.PROCGRPC_GRACE_SECONDS = "99";
    process.env.MY_APP_SETTING = "inherited";
    process.env.PROCGRPC_USER_SETTING = "inherited too"; // not a control variable
    const pool = new WorkerPool(testingPool({ workers: 2, script: HOSTILE_WORKER, logger: jsonLogger("warn", () => undefined) }));
    await pool.start();
    try {
      const seen = await Promise.all([0, 1].map(() => pool.unary(hostile("Env"), { names })));
      for (const { env } of seen) {
        expect(env).toEqual({
          PROCGRPC_SOCKET: expect.stringMatching(/\.sock$/),
          PROCGRPC_WORKER_ID: expect.stringMatching(/^w[01]$/),
          PROCGRPC_CONTROL_FD: "3",
          PROCGRPC_PIPE_FD: "4",
          PROCGRPC_MAX_CONCURRENCY: "32",
          PROCGRPC_GRACE_SECONDS: "2",
          PROCGRPC_PROCESS_GROUP: "1",
          PROCGRPC_SOCKET_DIR_OWNED: "1",
          // The pool's logger level, not Node's PROCGRPC_LOG_LEVEL.
          PROCGRPC_LOG_LEVEL: "warn",
          // The kill switches in force at spawn (none); the pool's control token is not here:
          // the worker removed it from its environment before the servicer ran.
          PROCGRPC_SWITCHED_OFF: "",
          PROCGRPC_SWITCHED_OFF_GENERATION: "0",
          PROCGRPC_USER_SETTING: "inherited too",
          MY_APP_SETTING: "inherited",
        });
      }
    } finally {
      await pool.shutdown();
    }
  });

  test("a control variable given in the pool's env option reaches the worker", async () => {
    process.env.PROCGRPC_DEBUG = "0";
    const pool = new WorkerPool(testingPool({ workers: 1, script: HOSTILE_WORKER, env: { PROCGRPC_LOG_LEVEL: "debug", PROCGRPC_DEBUG: "1" } }));
    await pool.start();
    try {
      const { env } = await pool.unary(hostile("Env"), { names: ["PROCGRPC_LOG_LEVEL", "PROCGRPC_DEBUG"] });
      expect(env).toEqual({ PROCGRPC_LOG_LEVEL: "debug", PROCGRPC_DEBUG: "1" });
    } finally {
      await pool.shutdown();
    }
  });
});

/** A pid no process has now: a child that already exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((r) => child.once("exit", r));
  const pid = child.pid as number;
  expect(await eventually(() => !existsSync(`/proc/${pid}`), 5000)).toBe(true);
  return pid;
}

/** Leaves a Unix socket file at `path` that nobody listens on (bound by a process that exited). */
async function socketFile(path: string): Promise<void> {
  execFileSync(PYTHON, ["-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path]);
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

