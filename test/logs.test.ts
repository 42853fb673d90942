import { callLogMiddleware, jsonLogger, RpcError, Status, WorkerPool } from "../src";
import { resolvePoolOptions } from "../src/pool/options";
import { workerLogLevel } from "../src/pool/worker-process";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, testingPool, WORKERS } from "./helpers/env";
import { memoryLogger } from "./helpers/memory-logger";
import { join } from "node:path";

const logger = memoryLogger();
const pool = new WorkerPool(testingPool({ workers: 1, logger, middleware: [callLogMiddleware({ logger })] }));
const testing = pool.client(TestServiceDefinition);

beforeAll(() => pool.start());
afterAll(() => pool.shutdown());

test("a worker printing 10 MB to stderr does not stall: the call completes, every line is relayed as text (warn), the worker keeps serving", async () => {
  const before = logger.entries.length;
  const bytes = 10 * 1024 * 1024;
  const reply = await testing.chatter({ stderrBytes: bytes }, { timeoutMs: 30000 });
  expect(reply.workerPid).toBe(pool.health().workers[0].pid);
  const expectedLines = Math.ceil(bytes / 100);
  expect(await eventually(() => logger.entries.slice(before).filter((e) => e.fields.stream === "stderr").length >= expectedLines, 20000)).toBe(true);
  const relayed = logger.entries.slice(before).filter((e) => e.fields.stream === "stderr");
  expect(relayed).toHaveLength(expectedLines);
  expect(relayed[0]).toEqual({ level: "warn", msg: "x".repeat(99), fields: { worker_id: "w0", worker_pid: reply.workerPid, source: "worker", stream: "stderr" } });
  expect(relayed.reduce((n, e) => n + (e.msg ?? "").length + 1, 0)).toBe(bytes);
  const echo = await testing.echo({ text: "still here" }, { timeoutMs: 5000 });
  expect(echo.text).toBe("still here");
});

test("one request id in the RpcError, in Node's log line for the failed call and in Python's log line for that call", async () => {
  const err = (await testing.chatter({ logMessage: "about to fail", failCode: Status.FAILED_PRECONDITION }).catch((e: unknown) => e)) as RpcError;
  expect(err).toBeInstanceOf(RpcError);
  expect(err.code()).toBe(Status.FAILED_PRECONDITION);
  const requestId = err.requestId as string;
  expect(requestId).toMatch(/^[0-9a-f-]{36}$/);

  const nodeLine = logger.entries.find((e) => e.msg === "call failed" && e.fields.requestId === requestId);
  expect(nodeLine).toMatchObject({
    level: "warn",
    fields: { method: "/testing.v1.TestService/Chatter", code: "FAILED_PRECONDITION", category: "worker", workerId: "w0" },
  });
  // Python's procgrpc.get_logger() line, relayed through the pool's logger with the worker's id.
  expect(await eventually(() => logger.entries.some((e) => e.msg === "about to fail" && e.fields.request_id === requestId), 5000)).toBe(true);
  const pythonLine = logger.entries.find((e) => e.msg === "about to fail" && e.fields.request_id === requestId);
  expect(pythonLine).toMatchObject({ level: "info", fields: { source: "worker", worker_id: "w0", worker_pid: pool.health().workers[0].pid } });
  // One key per fact: no camelCase twin, and no time/pid of the worker's (the pool logger has its own).
  for (const key of ["workerId", "time", "pid"]) expect(pythonLine?.fields).not.toHaveProperty(key);
});

test("a caller's own request id is used everywhere; the servicer reads it with procgrpc.current_call()", async () => {
  const reply = await testing.chatter({ logMessage: "served" }, { requestId: "req-abc-1" });
  expect(reply.requestId).toBe("req-abc-1");
  expect(reply.traceId).toBe("");
  expect(await eventually(() => logger.entries.some((e) => e.msg === "served" && e.fields.request_id === "req-abc-1"), 5000)).toBe(true);
  const ok = logger.entries.find((e) => e.msg === "call ok" && e.fields.requestId === "req-abc-1");
  expect(ok?.level).toBe("debug");
});

test("library code never writes to the console: everything goes through the injectable logger", () => {
  const { readdirSync, readFileSync, statSync } = require("node:fs") as typeof import("node:fs");
  const { join } = require("node:path") as typeof import("node:path");
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const abs = join(dir, entry);
      if (statSync(abs).isDirectory()) {
        if (entry !== "gen") walk(abs);
      } else if (abs.endsWith(".ts") && /\bconsole\.[a-z]+\(/.test(readFileSync(abs, "utf8"))) {
        offenders.push(abs);
      }
    }
  };
  walk(join(__dirname, "..", "src"));
  expect(offenders).toEqual([]);
});

describe("quiet by default, one key per fact", () => {
  test("at warn, a healthy pool and its workers write nothing: start, calls, shutdown", async () => {
    const lines: string[] = [];
    const quiet = new WorkerPool(testingPool({ workers: 2, logger: jsonLogger("warn", (l) => lines.push(l)) }));
    const written: string[][] = [];
    quiet.on("workerExit", (e) => written.push([...e.stderrTail]));
    await quiet.start();
    const client = quiet.client(TestServiceDefinition);
    await Promise.all(Array.from({ length: 20 }, (_, i) => client.echo({ text: `q${i}` })));
    await quiet.shutdown();
    expect(lines).toEqual([]);
    // The workers were told the level (PROCGRPC_LOG_LEVEL=warn): they did not even write a line.
    expect(written).toEqual([[], []]);
  });

  test("at info the worker's lifecycle is visible, with services by their full proto names and snake_case keys", async () => {
    const lines: Record<string, unknown>[] = [];
    const loud = new WorkerPool(testingPool({ workers: 1, logger: jsonLogger("info", (l) => lines.push(JSON.parse(l) as Record<string, unknown>)) }));
    await loud.start();
    const pid = loud.health().workers[0].pid;
    await loud.shutdown();
    const relayed = lines.filter((l) => l.source === "worker");
    expect(relayed.map((l) => l.msg)).toEqual(["starting", "ready", "stopping", "drained", "stopped"]);
    for (const line of relayed) {
      expect(line).toMatchObject({ level: 30, name: "procgrpc", worker_id: "w0", worker_pid: pid, source: "worker" });
      expect(line).not.toHaveProperty("workerId");
      expect(line).not.toHaveProperty("pid");
    }
    expect(relayed[0].services).toEqual(["testing.v1.TestService", "testing.v1.RawService"]);
    expect(relayed[1].services).toEqual(["testing.v1.TestService", "testing.v1.RawService"]);
  });

  test("the pool's level: logLevel, else PROCGRPC_LOG_LEVEL, else warn; workers write nothing below it (at most warn)", () => {
    const saved = process.env.PROCGRPC_LOG_LEVEL;
    const base = { script: join(WORKERS, "testing_worker.py") };
    try {
      delete process.env.PROCGRPC_LOG_LEVEL;
      expect(resolvePoolOptions(base).logLevel).toBe("warn");
      process.env.PROCGRPC_LOG_LEVEL = "info";
      expect(resolvePoolOptions(base).logLevel).toBe("info");
      expect(resolvePoolOptions({ ...base, logLevel: "debug" }).logLevel).toBe("debug");
      process.env.PROCGRPC_LOG_LEVEL = "loud";
      expect(() => resolvePoolOptions(base)).toThrow(/PROCGRPC_LOG_LEVEL must be "debug", "info", "warn", "error" or "silent", got "loud"/);
      expect(() => resolvePoolOptions({ ...base, logLevel: "verbose" as never })).toThrow(/logLevel must be/);
    } finally {
      if (saved === undefined) delete process.env.PROCGRPC_LOG_LEVEL;
      else process.env.PROCGRPC_LOG_LEVEL = saved;
    }
    expect(["debug", "info", "warn", "error", "silent"].map((l) => workerLogLevel(jsonLogger(l as never)))).toEqual(["debug", "info", "warn", "warn", "warn"]);
    // pino's level names; a logger without a level leaves the worker's default.
    expect(["trace", "fatal"].map((level) => workerLogLevel({ ...jsonLogger("info"), level }))).toEqual(["debug", "warn"]);
    expect(workerLogLevel(memoryLogger())).toBeUndefined();
  });
});
