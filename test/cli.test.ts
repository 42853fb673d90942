import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { isAlive, PYTHON, ROOT, WORKERS } from "./helpers/env";
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
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 45000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
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
