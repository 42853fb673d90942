// The hostile half of `npm run soak` (bench/soak.ts runs it beside the echo load): a pool of
// workers whose servicers start subprocesses and block their event loop, under kill -9, with
// consumers that abandon server streams, calls that share request ids, and non-idempotent calls
// under `retry: true`. At the end it reports what issue 16 asks the soak to prove:
// - leaked slots: every worker's in-flight count back to 0 (health()), none queued;
// - orphans: no live process left in any worker's process group after shutdown (/proc scan);
// - duplicate executions of non-idempotent calls: per-key execution counters kept in files by
//   the servicer (ResilienceTestService.Flaky) — never above 1;
// - flat file descriptors (Node's) across the run.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RpcError, WorkerPool, silentLogger, statusName } from "../src";
import { ResilienceTestServiceDefinition } from "../src/gen/testing/v1/resilience";
import { StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { groupMembers, hostile } from "../test/helpers/hostile";

/** What the hostile soak found. */
export interface HostileReport {
  calls: Record<string, number>;
  failed: Record<string, number>;
  kills: number;
  restarts: number;
  hung: number;
  workerProcesses: number;
  leakedSlots: number;
  queuedAtEnd: number;
  orphanProcesses: number;
  nonIdempotentCalls: number;
  duplicateExecutions: number;
  fdsStart: number;
  fdsEnd: number;
}

const fds = (): number => readdirSync("/proc/self/fd").length;

/** Runs the hostile load until `endAt` (epoch ms) and returns the report. */
export async function hostileSoak(root: string, python: string, endAt: number, transport: { transport: "pipelined" | "unary"; lane: boolean } = { transport: "pipelined", lane: true }): Promise<HostileReport> {
  const state = mkdtempSync(join(tmpdir(), "soak-hostile-"));
  const pool = new WorkerPool({
    workers: 2,
    python,
    script: join(root, "test", "workers", "soak_worker.py"),
    logger: silentLogger,
    retry: true,
    cancelGraceMs: 400,
    healthCheckIntervalMs: 250,
    healthCheckTimeoutMs: 250,
    unhealthyAfterMisses: 2,
    replaceUnhealthyAfterMs: 1500,
    restart: { initialDelayMs: 50, maxDelayMs: 1000, maxRestarts: 1000, windowMs: 60000 },
    transport: transport.transport,
    ...(transport.lane ? {} : { sharedMemoryLane: false as const }),
  });
  const pgids = new Set<number>();
  let restarts = 0;
  let hung = 0;
  pool.on("workerReady", (e) => e.pid && pgids.add(e.pid));
  pool.on("workerRestart", () => (restarts += 1));
  pool.on("workerHung", () => (hung += 1));
  await pool.start();
  for (const w of pool.health().workers) if (w.pid) pgids.add(w.pid);
  const fdsStart = fds();
  const testing = pool.client(TestServiceDefinition);
  const flaky = pool.client(ResilienceTestServiceDefinition);
  const streams = pool.client(StreamingTestServiceDefinition);
  const calls: Record<string, number> = {};
  const failed: Record<string, number> = {};
  const count = (kind: string, p: Promise<unknown>): Promise<void> => {
    calls[kind] = (calls[kind] ?? 0) + 1;
    return p.then(
      () => undefined,
      (e: unknown) => {
        const err = RpcError.from(e);
        const key = `${kind}: ${statusName(err.code())}/${err.category}`;
        failed[key] = (failed[key] ?? 0) + 1;
      },
    );
  };
  let keys = 0;
  const lanes: Record<string, () => Promise<void>> = {
    // Non-idempotent calls under retry: each key may execute at most once, whatever is killed.
    nonIdempotent: () => count("non-idempotent", flaky.flaky({ key: `k${++keys}`, stateDir: state, failFirst: 0 }, { timeoutMs: 3000 })),
    // A servicer that starts a subprocess inheriting stdout/stderr.
    subprocess: () => count("subprocess", pool.unary(hostile("SpawnChild"), { seconds: 3 }, { timeoutMs: 3000 })),
    // A consumer that leaves a server stream after its first message.
    abandonedStream: () =>
      count(
        "abandoned-stream",
        (async () => {
          for await (const _ of streams.count({ n: 1_000_000, intervalMs: 2 }, { timeoutMs: 600_000 })) break;
        })(),
      ),
    // Two calls sharing a request id, one cancelled politely by its deadline.
    sharedRequestId: async () => {
      const id = `shared-${keys++}`;
      await Promise.all([count("shared-id long", testing.sleep({ ms: 300 }, { requestId: id, timeoutMs: 5000 })), count("shared-id polite", testing.sleep({ ms: 5000 }, { requestId: id, timeoutMs: 50 }))]);
    },
  };
  const runLane = async (lane: () => Promise<void>): Promise<void> => {
    while (Date.now() < endAt) await lane();
  };
  let kills = 0;
  const chaos = async (): Promise<void> => {
    let round = 0;
    while (Date.now() < endAt - 3000) {
      await new Promise((r) => setTimeout(r, 3000 + Math.random() * 2000));
      const ready = pool.health().workers.filter((w) => w.state === "ready" && w.pid);
      if (ready.length === 0) continue;
      round += 1;
      if (round % 4 === 0) {
        // A handler that blocks the worker's event loop: health checks fail, the worker is replaced.
        void pool.unary(hostile("BlockLoop"), { seconds: 4 }, { timeoutMs: 500 }).catch(() => undefined);
      } else {
        const w = ready[Math.floor(Math.random() * ready.length)];
        kills += 1;
        try {
          process.kill(w.pid as number, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
  };
  await Promise.all([chaos(), ...Object.values(lanes).flatMap((lane) => [runLane(lane), runLane(lane)])]);
  // Settle: the last restarts, then every slot must be free and nothing queued.
  const settleUntil = Date.now() + 20_000;
  while (Date.now() < settleUntil && !(pool.health().ready === 2 && pool.health().workers.every((w) => w.inFlight === 0))) await new Promise((r) => setTimeout(r, 100));
  const health = pool.health();
  const leakedSlots = health.workers.reduce((n, w) => n + w.inFlight, 0);
  const fdsEnd = fds();
  await pool.shutdown();
  let orphanProcesses = 0;
  for (const pgid of pgids) orphanProcesses += groupMembers(pgid).length;
  let nonIdempotentCalls = 0;
  let duplicateExecutions = 0;
  for (const name of readdirSync(state)) {
    if (!name.startsWith("flaky-")) continue;
    nonIdempotentCalls += 1;
    const executions = Number(readFileSync(join(state, name), "utf8"));
    if (executions > 1) duplicateExecutions += executions - 1;
  }
  rmSync(state, { recursive: true, force: true });
  return { calls, failed, kills, restarts, hung, workerProcesses: pgids.size, leakedSlots, queuedAtEnd: health.queued, orphanProcesses, nonIdempotentCalls, duplicateExecutions, fdsStart, fdsEnd };
}
