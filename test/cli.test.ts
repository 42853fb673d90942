import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { WorkerPool } from "../src";
import { eventually, isAlive, PYTHON, ROOT, testingPool, WORKERS } from "./helpers/env";
import { scrape, valueOf } from "./helpers/scrape";

// The CLI bundled the way tsup bundles dist/cli.cjs (esbuild, dependencies external), so each
// invocation is a plain `node cli.cjs …` like the installed `procgrpc` bin.
const CLI = join(ROOT, "test", "gen", "cli.cjs");
const SCRIPT = join(WORKERS, "testing_worker.py");
const POOL = ["--python", PYTHON, "--script", SCRIPT];

beforeAll(() => {
  mkdirSync(join(ROOT, "test", "gen"), { recursive: true });
  execFileSync(join(ROOT, "node_modules", ".bin", "esbuild"), [
    join(ROOT, "src", "cli", "main.ts"), "--bundle", "--platform=node", "--target=node20", "--format=cjs", "--packages=external", "--log-level=warning", `--outfile=${CLI}`,
  ]);
});

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return cliWith({}, ...args);
}

/** Runs the CLI to its end with `input` on stdin and extra environment. */
function cliWith(opts: { input?: string; env?: Record<string, string> }, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 45000, input: opts.input ?? "", env: { ...process.env, ...opts.env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A CLI process still running: its stdout lines as they come, stdin open, its exit awaitable. */
interface RunningCli {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  exit: Promise<number | null>;
  /** Resolves when stdout has at least `n` lines. */
  linesAtLeast(n: number): Promise<string[]>;
}

/** Pids of the direct children of `pid`. */
function childPids(pid: number): number[] {
  const r = spawnSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" });
  return r.stdout.split("\n").map((l) => Number(l.trim())).filter((n) => n > 0);
}

function startCli(env: Record<string, string>, ...args: string[]): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  const lines: string[] = [];
  let stderr = "";
  createInterface({ input: child.stdout! }).on("line", (line) => lines.push(line));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => stderr,
    exit,
    async linesAtLeast(n) {
      if (!(await eventually(() => lines.length >= n || child.exitCode !== null, 30_000))) throw new Error(`no ${n} lines; stderr: ${stderr}`);
      if (lines.length < n) throw new Error(`exited with ${child.exitCode} after ${lines.length} lines; stderr: ${stderr}`);
      return lines;
    },
  };
}

describe("usage", () => {
  test.each([["codegen"], ["serve"], ["call"]])("procgrpc %s --help prints its usage and exits 0", (command) => {
    const r = cli(command, "--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`Usage: procgrpc ${command}`);
  });

  test("procgrpc --help lists every command", () => {
    const r = cli("--help");
    expect(r.status).toBe(0);
    for (const c of ["codegen", "serve", "call"]) expect(r.stdout).toContain(`procgrpc ${c}`);
  });

  test.each([
    [["serve", "--bogus"], "Unknown option '--bogus'"],
    [["serve", "--python", "python3"], "give --script <file> or --module <name>"],
    [["serve", "--script", "a.py", "--module", "b"], "give --script or --module, not both"],
    [["serve", "--script", "a.py", "--workers", "zero"], "--workers must be an integer >= 1, got 'zero'"],
    [["call"], "the method to call is required"],
    [["call", "not a method", "--socket", "/tmp/x.sock"], "is not a method name like package.Service/Method"],
    [["call", "a.B/C", "--data", "{oops", "--socket", "/tmp/x.sock"], "--data is not valid JSON"],
    [["call", "a.B/C"], "say where to call: --socket <path>, or --script/--module"],
    [["call", "a.B/C", "--socket", "/tmp/x.sock", "--script", "w.py"], "give --socket or pool options"],
    [["call", "a.B/C", "--socket", "/tmp/x.sock", "--metadata", "novalue"], "--metadata expects key=value"],
    [["call", "a.B/C", "--socket", "/tmp/x.sock", "--data", "{}", "--data-file", "r.ndjson"], "give --data or --data-file, not both"],
    [["call", "a.B/C", "--socket", "/tmp/x.sock", "--data-file", "/nonexistent/r.ndjson"], "--data-file /nonexistent/r.ndjson: no such file"],
    [["serve", "--script", "a.py", "--watch-path", "/nonexistent/src"], "--watch-path /nonexistent/src: no such file or directory"],
    [["frobnicate"], "unknown command 'frobnicate'"],
  ])("bad usage %j exits 2 naming the problem", (args, message) => {
    const r = cli(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe("procgrpc call with its own pool", () => {
  test("types from server reflection; the response is printed as proto3 JSON", () => {
    const r = cli("call", "testing.v1.TestService/Echo", "--data", JSON.stringify({ text: "hi", payload: "YWJj" }), "--request-id", "cli-req-1", ...POOL);
    expect(r.status).toBe(0);
    const reply = JSON.parse(r.stdout) as { text: string; payload: string; workerPid: number; metadata: Record<string, string> };
    expect(reply).toMatchObject({ text: "hi", payload: "YWJj", metadata: { "x-request-id": "cli-req-1" } });
    expect(reply.workerPid).toBeGreaterThan(0);
    expect(isAlive(reply.workerPid)).toBe(false); // the call's pool is shut down
  });

  test("types from --proto; --json on failure: code, details, category, decoded details, trailers; exit 1", () => {
    const data = { mode: "MODE_ABORT_WITH_STATUS", code: 5, details: "no widget 42", trailers: { "x-debug": "abc" } };
    const r = cli("call", "testing.v1.TestService/Fail", "--json", "--data", JSON.stringify(data), "--proto", join(ROOT, "proto", "testing", "v1", "testing.proto"), "--include", join(ROOT, "proto"), ...POOL);
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout) as { ok: boolean; error: Record<string, unknown> };
    expect(out.ok).toBe(false);
    expect(out.error).toMatchObject({
      code: 5,
      codeName: "NOT_FOUND",
      details: "no widget 42",
      category: "worker",
      retryable: false,
      workerId: "w0",
      statusDetails: [{ kind: "ErrorInfo", typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: { reason: "TEST", domain: "procgrpc.test" } }],
      trailers: { "x-debug": ["abc"] },
    });
    expect(out.error.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("a request field that does not exist is a usage error (exit 2), not a silent drop", () => {
    const r = cli("call", "testing.v1.TestService/Echo", "--data", '{"txt":"hi"}', ...POOL);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('key "txt" is unknown');
  });

  test("an unknown service names the services the worker has (exit 2)", () => {
    const r = cli("call", "nope.v1.Missing/Do", ...POOL);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("testing.v1.TestService");
  });
});

describe("procgrpc call: every kind of call", () => {
  const RECORDING = ["--python", PYTHON, "--script", join(WORKERS, "recording_worker.py")];
  const stateDir = mkdtempSync(join(tmpdir(), "procgrpc-cli-"));
  const env = { PROCGRPC_TEST_STATE_DIR: stateDir };
  const S = "testing.v1.StreamingTestService";
  afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

  test("a server stream prints one JSON object a line (--emit-defaults shows index 0)", () => {
    const r = cliWith({ env }, "call", `${S}/Count`, "--data", '{"n":3}', "--emit-defaults", ...RECORDING);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { index: number }).index)).toEqual([0, 1, 2]);
  });

  test("one request from a file (any JSON layout) or stdin for a unary or server-streaming call", () => {
    const file = join(stateDir, "count.json");
    writeFileSync(file, JSON.stringify({ n: 2 }, null, 2));
    const r = cliWith({ env }, "call", `${S}/Count`, "--data-file", file, ...RECORDING);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(2);
    const unary = cliWith({ env, input: '{"text":"from stdin"}' }, "call", "testing.v1.TestService/Echo", "--data", "@", ...RECORDING);
    expect(JSON.parse(unary.stdout)).toMatchObject({ text: "from stdin" });
  });

  test("stdout closed by its reader (| head): the call ends quietly with exit 0 and its workers are gone", async () => {
    const run = startCli(env, "call", `${S}/AsyncCount`, "--data", '{"n":100000,"intervalMs":1}', ...RECORDING);
    await run.linesAtLeast(1);
    const workers = childPids(run.child.pid as number);
    run.child.stdout!.destroy();
    expect(await run.exit).toBe(0);
    expect(run.stderr()).toBe("");
    expect(await eventually(() => !isAlive(workers[0]), 10_000)).toBe(true);
  });

  test("a server stream failing mid-stream: the responses before it, then the error; exit 1 (text and --json)", () => {
    const data = JSON.stringify({ n: 5, failAfter: 2, failCode: 9 });
    const text = cliWith({ env }, "call", `${S}/Count`, "--data", data, ...RECORDING);
    expect(text.status).toBe(1);
    expect(text.stdout.trim().split("\n")).toHaveLength(2);
    expect(text.stderr).toContain("ERROR FAILED_PRECONDITION (9): failed after 2 messages");
    expect(text.stderr).toContain("failed-at: 2");

    const json = cliWith({ env }, "call", `${S}/Count`, "--json", "--request-id", "ndjson-1", "--data", data, ...RECORDING);
    expect(json.status).toBe(1);
    const envelopes = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(envelopes).toEqual([
      { ok: true, method: `/${S}/Count`, requestId: "ndjson-1", index: 0, response: { workerPid: expect.any(Number) } },
      { ok: true, method: `/${S}/Count`, requestId: "ndjson-1", index: 1, response: { index: 1, workerPid: expect.any(Number) } },
      { ok: false, method: `/${S}/Count`, error: expect.objectContaining({ code: 9, codeName: "FAILED_PRECONDITION", details: "failed after 2 messages", requestId: "ndjson-1", trailers: { "failed-at": ["2"] } }) },
    ]);
  });

  test("a client stream reads NDJSON from stdin (blank lines skipped), from --data-file, or one request from --data", () => {
    const fromStdin = cliWith({ env, input: '{"data":"YWJj"}\n\n{"data":"ZGVmZw=="}\n' }, "call", `${S}/Upload`, ...RECORDING);
    expect(fromStdin.status).toBe(0);
    expect(JSON.parse(fromStdin.stdout)).toEqual({ bytes: "7", chunks: 2 });

    const file = join(stateDir, "upload.ndjson");
    writeFileSync(file, Array.from({ length: 10 }, () => '{"data":"eHh4"}').join("\n"));
    const fromFile = cliWith({ env }, "call", `${S}/Upload`, "--data-file", file, "--json", ...RECORDING);
    expect(fromFile.status).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toMatchObject({ ok: true, response: { bytes: "30", chunks: 10 } });

    const one = cliWith({ env }, "call", `${S}/Upload`, "--data", '{"data":"eHh4"}', ...RECORDING);
    expect(JSON.parse(one.stdout)).toEqual({ bytes: "3", chunks: 1 });
  });

  test("a bidirectional stream reads NDJSON from stdin (grpcurl's --data @) and prints each answer; an error mid-stream exits 1", () => {
    const ok = cliWith({ env, input: '{"text":"ab"}\n{"text":"cd"}\n' }, "call", `${S}/Chat`, "--data", "@", ...RECORDING);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe('{"text":"AB"}\n{"text":"CD"}\n');

    const failing = cliWith({ env, input: '{"text":"ab"}\n{"text":"fail"}\n{"text":"never"}\n' }, "call", `${S}/AsyncChat`, "--data-file", "-", ...RECORDING);
    expect(failing.status).toBe(1);
    expect(failing.stderr).toContain("ERROR FAILED_PRECONDITION (9): told to fail");
    expect(failing.stdout).not.toContain("reven");
  });

  test("a request line that is not JSON, or not the method's message, is bad input: exit 2 naming the line", () => {
    const notJson = cliWith({ env, input: '{"text":"a"}\n{oops\n' }, "call", `${S}/Chat`, ...RECORDING);
    expect(notJson.status).toBe(2);
    expect(notJson.stderr).toContain("procgrpc call: stdin line 2 is not valid JSON");
    const unknownField = cliWith({ env, input: '{"txt":"a"}\n' }, "call", `${S}/Upload`, ...RECORDING);
    expect(unknownField.status).toBe(2);
    expect(unknownField.stderr).toMatch(/stdin line 1: .*key "txt" is unknown/);
  });

  test("Ctrl-C (SIGINT) cancels a server stream; the worker sees the cancellation; exit 130", async () => {
    const run = startCli(env, "call", `${S}/AsyncCount`, "--request-id", "sigint-server", "--data", '{"n":100000,"intervalMs":20}', ...RECORDING);
    await run.linesAtLeast(2);
    const workers = childPids(run.child.pid as number);
    expect(workers).toHaveLength(1);
    run.child.kill("SIGINT");
    expect(await run.exit).toBe(130);
    expect(run.stderr()).toContain("ERROR CANCELLED (1): call cancelled by the caller: interrupted (SIGINT)");
    expect(await eventually(() => existsSync(join(stateDir, "cancelled-sigint-server")), 20_000)).toBe(true);
    expect(isAlive(workers[0])).toBe(false); // the call's pool was shut down
  });

  test("Ctrl-C cancels a bidirectional call driven line by line on stdin", async () => {
    const run = startCli(env, "call", `${S}/AsyncChat`, "--request-id", "sigint-bidi", ...RECORDING);
    run.child.stdin!.write('{"text":"hello"}\n');
    expect(await run.linesAtLeast(1)).toEqual(['{"text":"olleh"}']); // answered while stdin is still open
    run.child.stdin!.write('{"text":"hold"}\n');
    expect(await eventually(() => existsSync(join(stateDir, "holding-sigint-bidi")), 20_000)).toBe(true);
    run.child.kill("SIGINT");
    expect(await run.exit).toBe(130);
    expect(await eventually(() => existsSync(join(stateDir, "cancelled-sigint-bidi")), 20_000)).toBe(true);
  });

  test("--socket: Ctrl-C cancels a client stream on a running worker, which sees it and keeps serving", async () => {
    const pool = new WorkerPool(testingPool({ workers: 1, script: join(WORKERS, "recording_worker.py"), env }));
    await pool.start();
    try {
      const socket = pool.health().workers[0].socket;
      const run = startCli({}, "call", `${S}/AsyncUpload`, "--request-id", "sigint-client", "--socket", socket);
      run.child.stdin!.write(`{"data":"${Buffer.from("hold").toString("base64")}"}\n`);
      expect(await eventually(() => existsSync(join(stateDir, "holding-sigint-client")), 20_000)).toBe(true);
      run.child.kill("SIGINT");
      expect(await run.exit).toBe(130);
      expect(run.stderr()).toContain("ERROR CANCELLED (1)");
      expect(await eventually(() => existsSync(join(stateDir, "cancelled-sigint-client")), 20_000)).toBe(true);
      const after = cliWith({ input: '{"data":"eHk="}\n' }, "call", `${S}/AsyncUpload`, "--socket", socket);
      expect(JSON.parse(after.stdout)).toEqual({ bytes: "2", chunks: 1 });
    } finally {
      await pool.shutdown();
    }
  });
});

describe("procgrpc serve", () => {
  let serve: ChildProcess;
  const events: Record<string, unknown>[] = [];
  let stderr = "";

  function waitFor(predicate: (e: Record<string, unknown>) => boolean, timeoutMs = 20000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; events: ${JSON.stringify(events)}; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
      const check = (): void => {
        const found = events.find(predicate);
        if (found) {
          clearTimeout(timer);
          resolve(found);
        } else setTimeout(check, 20);
      };
      check();
    });
  }

  beforeAll(() => {
    serve = spawn(process.execPath, [CLI, "serve", "--workers", "2", ...POOL, "--metrics-port", "0", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    createInterface({ input: serve.stdout! }).on("line", (line) => events.push(JSON.parse(line) as Record<string, unknown>));
    serve.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  });
  afterAll(() => {
    if (serve.exitCode === null) serve.kill("SIGKILL");
  });

  test("prints each worker's socket; procgrpc call --socket and the metrics endpoint work against it; kill -9 and SIGTERM are reported", async () => {
    const ready = (await waitFor((e) => e.event === "ready")) as { workers: { workerId: string; pid: number; socket: string; state: string }[]; metrics: string };
    expect(ready.workers.map((w) => [w.workerId, w.state])).toEqual([["w0", "ready"], ["w1", "ready"]]);
    for (const w of ready.workers) expect(existsSync(w.socket)).toBe(true);

    const ok = cli("call", "testing.v1.TestService/Echo", "--json", "--data", '{"text":"via socket"}', "--socket", ready.workers[1].socket);
    expect(ok.status).toBe(0);
    const okJson = JSON.parse(ok.stdout) as { ok: boolean; requestId: string; response: { text: string; workerPid: number } };
    expect(okJson).toMatchObject({ ok: true, method: "/testing.v1.TestService/Echo", response: { text: "via socket", workerPid: ready.workers[1].pid } });

    const bad = cli("call", "testing.v1.TestService/Fail", "--data", '{"mode":"MODE_RAISE","exception":"KeyError","details":"k"}', "--socket", ready.workers[0].socket);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("ERROR NOT_FOUND (5): 'k'");
    expect(bad.stderr).toContain("category:   worker");
    expect(bad.stderr).toMatch(/ErrorInfo \{"reason":"KeyError","domain":"python"/);

    const samples = await scrape(ready.metrics);
    expect(valueOf(samples, "procgrpc_pool_workers", { procgrpc_worker_state: "ready" })).toBe(2);

    process.kill(ready.workers[0].pid, "SIGKILL");
    await waitFor((e) => e.event === "workerExit" && e.workerId === "w0" && e.expected === false && e.signal === "SIGKILL");
    await waitFor((e) => e.event === "workerRestart" && e.workerId === "w0");
    const back = await waitFor((e) => e.event === "workerReady" && e.workerId === "w0");
    expect(back.pid).not.toBe(ready.workers[0].pid);
    expect(events.some((e) => e.event === "workerState" && e.workerId === "w0" && e.to === "restarting")).toBe(true);
    expect(valueOf(await scrape(ready.metrics), "procgrpc_pool_worker_restarts_total", { procgrpc_worker_id: "w0" })).toBe(1);

    const exited = new Promise<number | null>((resolve) => serve.once("exit", (code) => resolve(code)));
    serve.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(["stopping", "stopped"]));
    expect(events.find((e) => e.event === "stopping")?.signal).toBe("SIGTERM");
    for (const w of ready.workers) expect(existsSync(w.socket)).toBe(false);
    expect(isAlive(ready.workers[1].pid)).toBe(false);
    expect(isAlive(back.pid as number)).toBe(false);
  });
});

describe("procgrpc serve --watch", () => {
  test("editing the servicer replaces each worker (reason reload) and the new code answers on the new sockets", async () => {
    const dir = mkdtempSync(join(tmpdir(), "procgrpc-serve-watch-"));
    const servicer = join(dir, "servicer.py");
    copyFileSync(join(WORKERS, "reloadable_worker.py"), servicer);
    const serve = spawn(process.execPath, [CLI, "serve", "--workers", "2", "--python", PYTHON, "--script", servicer, "--watch", "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PROCGRPC_TEST_WORKERS: WORKERS },
    });
    const events: Record<string, unknown>[] = [];
    let stderr = "";
    createInterface({ input: serve.stdout! }).on("line", (line) => events.push(JSON.parse(line) as Record<string, unknown>));
    serve.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => serve.once("exit", (code) => resolve(code)));
    try {
      expect(await eventually(() => events.some((e) => e.event === "ready") && stderr.includes("watching for changes"), 30_000)).toBe(true);
      expect(events.find((e) => e.event === "ready")?.watch).toBe(true);
      writeFileSync(servicer, readFileSync(servicer, "utf8").replace('VERSION = "v1"', 'VERSION = "v2"'));
      const reloads = (): Record<string, unknown>[] => events.filter((e) => e.event === "workerRecycled" && e.reason === "reload");
      expect(await eventually(() => reloads().length === 2, 60_000)).toBe(true);
      const newPid = reloads()[1].newPid;
      const socket = events.find((e) => e.event === "workerReady" && e.pid === newPid)?.socket as string;
      const r = cli("call", "testing.v1.TestService/Echo", "--data", '{"text":"hi"}', "--socket", socket);
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ text: "v2:hi", workerPid: newPid });
      serve.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      if (serve.exitCode === null) serve.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
