import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { RpcError, silentLogger, type WorkerPoolOptions } from "../../src";

/** Repository root. */
export const ROOT = join(__dirname, "..", "..");
/** The virtualenv Python that `npm test` set up, with python-worker installed. */
export const PYTHON = join(ROOT, ".venv", "bin", "python");
/** Worker scripts used by the tests. */
export const WORKERS = join(ROOT, "test", "workers");

/** The transports a pool can use; the first is the default (what users get without options). */
export const TRANSPORTS = ["pipelined", "unary"] as const;

/**
 * The transport the suite runs with: the default ("pipelined") unless PROCGRPC_TEST_TRANSPORT
 * says otherwise. `npm test` runs every suite on the default, then the transport-dependent ones
 * again with PROCGRPC_TEST_TRANSPORT=unary; the conformance suite compares both in one run.
 */
export const TRANSPORT: (typeof TRANSPORTS)[number] = process.env.PROCGRPC_TEST_TRANSPORT === "unary" ? "unary" : "pipelined";

/**
 * With PROCGRPC_TEST_LANE=always, pools of the suite send every unary request and response
 * through the shared-memory lane (threshold 0); `npm test` runs the conformance and error suites
 * that way too. Spread into a pool's options.
 */
export const LANE_OPTIONS: { sharedMemoryLane?: { thresholdBytes: number } } = process.env.PROCGRPC_TEST_LANE === "always" ? { sharedMemoryLane: { thresholdBytes: 0 } } : {};

/**
 * The pipeline's carrier the suite runs with: the default (the worker's socket pair) unless
 * PROCGRPC_TEST_PIPE_CARRIER=grpc-stream; `npm test` runs the pipeline, conformance and error
 * suites that way too. Spread into a pool's options.
 */
export const PIPE_CARRIER_OPTIONS: { pipelineCarrier?: "grpc-stream" } = process.env.PROCGRPC_TEST_PIPE_CARRIER === "grpc-stream" ? { pipelineCarrier: "grpc-stream" } : {};

/** Options for a pool of the testing worker; tests override what they exercise. */
export function testingPool(overrides: Partial<WorkerPoolOptions> = {}): WorkerPoolOptions {
  return {
    workers: 2,
    python: PYTHON,
    script: join(WORKERS, "testing_worker.py"),
    startTimeoutMs: 20000,
    logger: silentLogger,
    transport: TRANSPORT,
    ...PIPE_CARRIER_OPTIONS,
    ...LANE_OPTIONS,
    ...overrides,
  } as WorkerPoolOptions;
}

/** True when a process with this pid exists (and is not a zombie). */
export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** Pids of live processes whose command line mentions `needle`. */
export function pidsMatching(needle: string): number[] {
  const out = execFileSync("ps", ["-eo", "pid=,stat=,args="], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((l) => l.includes(needle) && !/^\s*\d+\s+Z/.test(l) && !l.includes("ps -eo"))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** Polls `check` (which may be async) until it is true or `timeoutMs` passes; returns the last result. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}

/** Asserts that the stubs the tests need were generated (npm test runs setup first). */
export function assertSetUp(): void {
  if (!existsSync(PYTHON)) throw new Error("run `npm test` (or `node scripts/setup.mjs`) first: .venv is missing");
}

/** Awaits a promise that must reject with an RpcError, and returns that error. */
export async function rejection(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof RpcError)) throw new Error(`expected an RpcError, got ${String(err)}`);
  return err;
}
