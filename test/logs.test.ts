import { callLogMiddleware, RpcError, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { eventually, testingPool } from "./helpers/env";
import { memoryLogger } from "./helpers/memory-logger";

const logger = memoryLogger();
const pool = new WorkerPool(testingPool({ workers: 1, logger, middleware: [callLogMiddleware({ logger })] }));
const testing = pool.client(TestServiceDefinition);

beforeAll(() => pool.start());
afterAll(() => pool.shutdown());

test("a worker printing 10 MB to stderr does not stall: the call completes, every line is relayed as text, the worker keeps serving", async () => {
  const before = logger.entries.length;
  const bytes = 10 * 1024 * 1024;
  const reply = await testing.chatter({ stderrBytes: bytes }, { timeoutMs: 30000 });
  expect(reply.workerPid).toBe(pool.health().workers[0].pid);
  const expectedLines = Math.ceil(bytes / 100);
  expect(await eventually(() => logger.entries.slice(before).filter((e) => e.fields.stream === "stderr").length >= expectedLines, 20000)).toBe(true);
  const relayed = logger.entries.slice(before).filter((e) => e.fields.stream === "stderr");
  expect(relayed).toHaveLength(expectedLines);
  expect(relayed[0]).toMatchObject({ level: "info", msg: "x".repeat(99), fields: { workerId: "w0", pid: reply.workerPid, source: "worker" } });
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
  expect(pythonLine).toMatchObject({ level: "info", fields: { source: "worker", workerId: "w0", worker_id: "w0" } });
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
