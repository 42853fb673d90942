import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WorkerPoolOptions } from "../../src";
import { WORKERS, testingPool } from "./env";

/** The worker serving ResilienceTestService and TestService. */
export const RESILIENCE_WORKER = join(WORKERS, "resilience_worker.py");

/** Options for a pool of the resilience worker. */
export function resiliencePool(overrides: Partial<WorkerPoolOptions> = {}): WorkerPoolOptions {
  return testingPool({ script: RESILIENCE_WORKER, ...overrides });
}

/** A fresh directory for the workers' shared state (counters, claims, ledgers). */
export function stateDir(prefix = "pgr-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** How many calls the Flaky servicer has seen for `key`. */
export function flakyCount(dir: string, key: string): number {
  try {
    return Number(readFileSync(join(dir, `flaky-${key}`), "utf8"));
  } catch {
    return 0;
  }
}

/** Sum of every Flaky counter in `dir`. */
export function flakyTotal(dir: string): number {
  return readdirSync(dir)
    .filter((f) => f.startsWith("flaky-"))
    .reduce((n, f) => n + Number(readFileSync(join(dir, f), "utf8")), 0);
}

/** Lines of a ledger file (empty when it does not exist). */
export function ledger(path: string): string[] {
  try {
    return readFileSync(path, "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

/** The RpcError a promise rejects with (fails the test if it resolves); shared with the other suites. */
export { rejection } from "./env";
