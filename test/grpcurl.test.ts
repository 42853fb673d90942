import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { WorkerPool } from "../src";
import { ROOT, testingPool } from "./helpers/env";

// grpcurl 1.9.1, installed by scripts/setup.mjs from the Go module proxy. Missing grpcurl is a
// failure, not a skip: the debugging story in docs/debugging.md depends on it.
const GRPCURL = join(ROOT, ".tools", "bin", "grpcurl");

const pool = new WorkerPool(testingPool({ workers: 1 }));
let socket = "";

beforeAll(async () => {
  if (!existsSync(GRPCURL)) {
    throw new Error(`${GRPCURL} is missing: install Go and run \`node scripts/setup.mjs\` (it runs go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.1)`);
  }
  await pool.start();
  socket = pool.health().workers[0].socket;
});
afterAll(() => pool.shutdown());

function grpcurl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(GRPCURL, ["-plaintext", "-unix", ...args], { encoding: "utf8", timeout: 20000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("the worker's socket is in health() and grpcurl lists its services over reflection", () => {
  expect(socket).toMatch(/\.sock$/);
  const r = grpcurl(socket, "list");
  expect(r.status).toBe(0);
  expect(r.stdout.split("\n")).toEqual(expect.arrayContaining(["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "testing.v1.TestService"]));
});

test("grpcurl describes a service, with its methods and idempotency options", () => {
  const r = grpcurl(socket, "describe", "testing.v1.TestService");
  expect(r.status).toBe(0);
  expect(r.stdout).toContain("testing.v1.TestService is a service:");
  expect(r.stdout).toContain("rpc Echo ( .testing.v1.EchoRequest ) returns ( .testing.v1.EchoResponse )");
  expect(r.stdout).toContain("option idempotency_level = NO_SIDE_EFFECTS;");
});

test("grpcurl makes a unary call with a JSON request", () => {
  const r = grpcurl("-d", JSON.stringify({ text: "hi", payload: Buffer.from("abc").toString("base64") }), socket, "testing.v1.TestService/Echo");
  expect(r.status).toBe(0);
  const reply = JSON.parse(r.stdout) as { text: string; payload: string; worker_pid: number };
  expect(reply.text).toBe("hi");
  expect(reply.payload).toBe("YWJj");
  expect(reply.worker_pid).toBe(pool.health().workers[0].pid);
});

test("grpcurl -v shows an error's code, message, decoded details and trailers; exit code 64 + code", () => {
  const request = { mode: "MODE_ABORT_WITH_STATUS", code: 5, details: "no widget 42", trailers: { "x-debug": "abc" } };
  const r = grpcurl("-v", "-d", JSON.stringify(request), socket, "testing.v1.TestService/Fail");
  expect(r.status).toBe(64 + 5);
  expect(r.stdout).toContain("Response trailers received:");
  expect(r.stdout).toContain("x-debug: abc");
  expect(r.stdout).toContain("grpc-status-details-bin:");
  expect(r.stderr).toContain("Code: NotFound");
  expect(r.stderr).toContain("Message: no widget 42");
  expect(r.stderr).toContain('"@type": "type.googleapis.com/google.rpc.ErrorInfo"');
  expect(r.stderr).toContain('"reason": "TEST"');
});

test("a Python exception seen through grpcurl: mapped code and procgrpc's ErrorInfo detail", () => {
  const r = grpcurl("-v", "-d", JSON.stringify({ mode: "MODE_RAISE", exception: "KeyError", details: "widget 42" }), socket, "testing.v1.TestService/Fail");
  expect(r.status).toBe(64 + 5);
  expect(r.stderr).toContain("Code: NotFound");
  expect(r.stderr).toContain('"reason": "KeyError"');
  expect(r.stderr).toContain('"method": "/testing.v1.TestService/Fail"');
});
