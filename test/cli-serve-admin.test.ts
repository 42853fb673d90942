/** `procgrpc serve` admin commands on stdin and on the --control Unix socket, with real workers. */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { isSwitchedOff, RemotePool, RpcError, silentLogger, Status } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { isAlive, PYTHON, ROOT, WORKERS } from "./helpers/env";

// Bundled like dist/cli.cjs (see cli.test.ts), to its own file so the two suites can run at once.
const CLI = join(ROOT, "test", "gen", "cli-serve-admin.cjs");
const POOL = ["--python", PYTHON, "--script", join(WORKERS, "testing_worker.py")];

beforeAll(() => {
  mkdirSync(join(ROOT, "test", "gen"), { recursive: true });
  execFileSync(join(ROOT, "node_modules", ".bin", "esbuild"), [join(ROOT, "src", "cli", "main.ts"), "--bundle", "--platform=node", "--target=node20", "--format=cjs", "--packages=external", "--log-level=warning", `--outfile=${CLI}`]);
});

/** Sends one command line on the control socket and resolves with its JSON reply. */
function control(path: string, line: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once("error", reject);
    createInterface({ input: socket }).once("line", (reply) => {
      socket.destroy();
      resolve(JSON.parse(reply) as Record<string, unknown>);
    });
    socket.write(`${line}\n`);
  });
}

/**
 * Starts `procgrpc serve … --control <socket> --json` with `args`, collecting its JSON event lines;
 * `waitFor` resolves with the first event that matches (polling the collected lines).
 */
function startServe(args: string[], waitMs: number) {
  const dir = mkdtempSync(join(tmpdir(), "pg-admin-"));
  const socketPath = join(dir, "control.sock");
  const serve = spawn(process.execPath, [CLI, "serve", ...args, ...POOL, "--control", socketPath, "--json"], { stdio: ["pipe", "pipe", "pipe"] });
  const events: Record<string, unknown>[] = [];
  let stderr = "";
  createInterface({ input: serve.stdout }).on("line", (line) => events.push(JSON.parse(line) as Record<string, unknown>));
  serve.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const waitFor = (predicate: (e: Record<string, unknown>) => boolean, timeoutMs = waitMs): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const until = Date.now() + timeoutMs;
      const check = (): void => {
        const found = events.find(predicate);
        if (found) resolve(found);
        else if (Date.now() > until) reject(new Error(`timed out; events: ${JSON.stringify(events)}; stderr: ${stderr.slice(-2000)}`));
        else setTimeout(check, 20);
      };
      check();
    });
  return { dir, socketPath, serve, waitFor };
}

test("serve takes kill-switch, circuit and status commands on stdin and on its control socket, with spares and autoscaling bounds", async () => {
  const { dir, socketPath, serve, waitFor } = startServe(["--workers", "1-2", "--spares", "1"], 30_000);
  try {
    const ready = (await waitFor((e) => e.event === "ready")) as { workers: { pid: number }[]; spares: { workerId: string; pid: number }[]; scaling: Record<string, unknown>; control: string };
    expect(ready.control).toBe(socketPath);
    expect(ready.scaling).toMatchObject({ mode: "auto", min: 1, max: 2, spares: 1 });
    expect(ready.spares).toHaveLength(1);

    serve.stdin.write("off testing.v1.TestService/Echo\n");
    const off = await waitFor((e) => e.event === "admin" && e.command === "off testing.v1.TestService/Echo");
    expect(off).toMatchObject({ ok: true, result: { switchedOff: ["/testing.v1.TestService/Echo"] } });
    await waitFor((e) => e.event === "switched" && e.on === false);

    const status = await control(socketPath, "status");
    expect(status).toMatchObject({ ok: true, command: "status", result: { switchedOff: ["/testing.v1.TestService/Echo"], scaling: { min: 1, max: 2 } } });
    expect(await control(socketPath, "on /testing.v1.TestService/Echo")).toMatchObject({ ok: true, result: { switchedOff: [] } });
    // Refusals and nonsense are answers, not crashes.
    expect(await control(socketPath, "isolate worker w0")).toMatchObject({ ok: false, error: expect.stringMatching(/no worker circuit breaker/) });
    expect(await control(socketPath, "off not/a/method/at/all")).toMatchObject({ ok: false, error: expect.stringMatching(/neither a method path/) });
    expect(await control(socketPath, "frobnicate")).toMatchObject({ ok: false, error: "unknown command 'frobnicate' (try: help)" });
    expect(serve.exitCode).toBeNull();

    const exited = new Promise<number | null>((resolve) => serve.once("exit", (code) => resolve(code)));
    serve.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(existsSync(socketPath)).toBe(false);
    for (const w of [...ready.workers, ...ready.spares]) expect(isAlive(w.pid)).toBe(false);
  } finally {
    if (serve.exitCode === null) serve.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

const GRPCURL = join(ROOT, ".tools", "bin", "grpcurl");

/** grpcurl's unary Echo on a worker's socket (as an operator would debug it). */
function grpcurlEcho(socket: string): { status: number | null; out: string } {
  const r = spawnSync(GRPCURL, ["-plaintext", "-unix", "-d", JSON.stringify({ text: "grpcurl" }), socket, "testing.v1.TestService/Echo"], { encoding: "utf8", timeout: 20_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A RemotePool's Echo on a worker's socket: the text, or the error. */
async function remoteEcho(socket: string): Promise<string | RpcError> {
  const remote = new RemotePool({ targets: [`unix:${socket}`], healthCheckIntervalMs: 0, logger: silentLogger });
  await remote.start();
  try {
    return await remote
      .client(TestServiceDefinition)
      .echo({ text: "remote" })
      .then(
        (r) => r.text,
        (e: unknown) => e as RpcError,
      );
  } finally {
    await remote.shutdown();
  }
}

test("serve: direct clients on the published sockets (grpcurl, a RemotePool) are refused while a switch is off, also by a worker back from kill -9, and served after on", async () => {
  expect(existsSync(GRPCURL)).toBe(true);
  const { dir, socketPath, serve, waitFor } = startServe(["--workers", "2"], 60_000);
  const expectRefused = (r: string | RpcError): void => {
    expect(r).toBeInstanceOf(RpcError);
    expect((r as RpcError).code()).toBe(Status.UNAVAILABLE);
    expect(isSwitchedOff(r as RpcError)).toBe(true);
  };
  try {
    const ready = (await waitFor((e) => e.event === "ready")) as { workers: { workerId: string; pid: number; socket: string }[] };
    const [w0, w1] = ready.workers;
    expect(grpcurlEcho(w0.socket)).toMatchObject({ status: 0 });

    expect(await control(socketPath, "off testing.v1.TestService/Echo")).toMatchObject({ ok: true, result: { switchedOff: ["/testing.v1.TestService/Echo"] } });
    // The reply comes once every worker refuses it too.
    for (const w of [w0, w1]) {
      const r = grpcurlEcho(w.socket);
      expect(r.status).not.toBe(0);
      expect(r.out).toContain("Code: Unavailable");
      expect(r.out).toContain("/testing.v1.TestService/Echo is switched off for this pool");
      expectRefused(await remoteEcho(w.socket));
    }

    // kill -9 while off: the worker that comes back refuses before it takes calls.
    process.kill(w0.pid, "SIGKILL");
    const back = (await waitFor((e) => e.event === "workerReady" && e.workerId === w0.workerId && e.pid !== w0.pid)) as { socket: string };
    expect(grpcurlEcho(back.socket).out).toContain("switched off");
    expectRefused(await remoteEcho(back.socket));

    expect(await control(socketPath, "on testing.v1.TestService/Echo")).toMatchObject({ ok: true, result: { switchedOff: [] } });
    for (const socket of [back.socket, w1.socket]) {
      expect(grpcurlEcho(socket)).toMatchObject({ status: 0 });
      expect(await remoteEcho(socket)).toBe("remote");
    }

    const exited = new Promise<number | null>((resolve) => serve.once("exit", (code) => resolve(code)));
    serve.kill("SIGTERM");
    expect(await exited).toBe(0);
  } finally {
    if (serve.exitCode === null) serve.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad --workers ranges and --spares values are usage errors (exit 2)", () => {
  for (const [args, message] of [
    [["--workers", "3-1"], "--workers 3-1: give <min>-<max> with min <= max and max >= 1"],
    [["--workers", "0-0"], "--workers 0-0: give <min>-<max>"],
    [["--spares", "two"], "--spares must be an integer >= 0, got 'two'"],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, "serve", ...POOL, ...args], { encoding: "utf8", timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  }
});
