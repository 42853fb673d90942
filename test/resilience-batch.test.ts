/**
 * Batches with partial success, dead letters in the durable directory store, and
 * `procgrpc dlq` (list, show, replay, purge, migrate) — including a replay killed with SIGKILL
 * midway. Concurrent replays and the legacy JSON-lines store: dlq-replay-processes.test.ts.
 */
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DirectoryDeadLetterStore, JsonlDeadLetterStore, Status, WorkerPool, type BatchProgress } from "../src";
import { main } from "../src/cli/main";
import { ResilienceTestServiceDefinition, ScoreRequest } from "../src/gen/testing/v1/resilience";
import { PYTHON, ROOT, eventually } from "./helpers/env";
import { RESILIENCE_WORKER, ledger, resiliencePool, stateDir } from "./helpers/resilience";

const dir = stateDir("pgb-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CLI = [process.execPath, "--import", "tsx", join(ROOT, "src", "cli", "main.ts"), "dlq"];
const POOL_FLAGS = ["--python", PYTHON, "--script", RESILIENCE_WORKER, "--workers", "2"];

/** Runs `procgrpc dlq ...` in this process (the crash test below runs it as its own process). */
async function dlq(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(["dlq", ...args], (s) => (stdout += s), (s) => (stderr += s));
  return { code, stdout, stderr };
}

function counts(lines: string[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const l of lines) m.set(Number(l), (m.get(Number(l)) ?? 0) + 1);
  return m;
}

describe("batch of 1,000 with 5% permanent failures", () => {
  const pool = new WorkerPool(resiliencePool({ workers: 2, retry: { maxAttempts: 3, initialDelayMs: 1 } }));
  const client = pool.client(ResilienceTestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("exact succeeded and failed sets, exact dead letters; replay after fixing the servicer empties the store", async () => {
    const storePath = join(dir, "batch.dlq");
    const fixed = join(dir, "batch-fixed");
    const scored = join(dir, "batch-ledger");
    const store = new DirectoryDeadLetterStore(storePath);
    const requests = Array.from({ length: 1000 }, (_, id) => ({ id, failEvery: 20, fixedFlagPath: fixed, ledgerPath: scored }));
    const progress: BatchProgress[] = [];
    const result = await pool.batch(client.score, requests, { concurrency: 16, deadLetters: store, onProgress: (p) => progress.push(p) });

    const failing = requests.filter((r) => r.id % 20 === 0).map((r) => r.id);
    expect(failing).toHaveLength(50);
    expect(result.failed.map((f) => f.index)).toEqual(failing);
    expect(result.deadLetterErrors).toEqual([]);
    expect(result.succeeded.map((s) => s.index)).toEqual(requests.filter((r) => r.id % 20 !== 0).map((r) => r.id));
    for (const s of result.succeeded) expect(s.response).toEqual({ id: s.index, score: s.index * 2 });
    for (const f of result.failed) {
      expect(f.error.code()).toBe(Status.INVALID_ARGUMENT);
      expect(f.error.attempts).toBe(1); // permanent: never retried
    }
    expect(progress).toHaveLength(1000);
    expect(progress.at(-1)).toMatchObject({ total: 1000, done: 1000, succeeded: 950, failed: 50 });
    expect(new Set(progress.map((p) => p.index)).size).toBe(1000);

    const letters = await store.list();
    expect(letters.map((l) => (l.requestJson as { id: number }).id).sort((a, b) => a - b)).toEqual(failing);
    expect(new Set(letters.map((l) => l.id))).toEqual(new Set(result.deadLetterIds));
    for (const l of letters) {
      expect(l).toMatchObject({ method: "/testing.v1.ResilienceTestService/Score", code: Status.INVALID_ARGUMENT, codeName: "INVALID_ARGUMENT", category: "worker", attempts: 1, replays: 0 });
      expect(l.details).toBe(`item ${(l.requestJson as { id: number }).id} cannot be scored`);
      expect(ScoreRequest.decode(Buffer.from(l.request, "base64")).id).toBe((l.requestJson as { id: number }).id);
      expect(Date.parse(l.firstFailureAt)).toBeLessThanOrEqual(Date.parse(l.lastFailureAt));
      expect(l.source).toEqual({ batchIndex: (l.requestJson as { id: number }).id });
    }

    // procgrpc dlq list / show.
    const listed = await dlq("list", "--store", storePath, "--json");
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as unknown[]).length).toBe(50);
    const shown = await dlq("show", letters[0].id, "--store", storePath);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toEqual(letters[0]);
    expect(await dlq("show", "no-such-id", "--store", storePath)).toMatchObject({ code: 1 });

    // Replay before the fix: everything fails again and stays, with the failure recorded.
    const early = await dlq("replay", "--store", storePath, ...POOL_FLAGS, "--json");
    expect(early.code).toBe(1);
    expect(JSON.parse(early.stdout)).toMatchObject({ replayed: 0, remaining: 50 });
    expect((await store.list()).every((l) => l.replays === 1 && l.attempts === 2)).toBe(true);

    // Fix the servicer, replay: the store empties and each failed item is scored exactly once.
    writeFileSync(fixed, "");
    const replayed = await dlq("replay", "--store", storePath, ...POOL_FLAGS, "--json");
    expect(replayed.stderr).toBe("");
    expect(replayed.code).toBe(0);
    expect(JSON.parse(replayed.stdout)).toEqual({ replayed: 50, failed: [], skipped: 0, remaining: 0 });
    expect(await store.list()).toEqual([]);
    const scoredCounts = counts(ledger(scored));
    for (const id of failing) expect(scoredCounts.get(id)).toBe(1);
    expect(scoredCounts.size).toBe(1000);
  });

  test("procgrpc dlq purge removes letters; bad usage names what is missing", async () => {
    const storePath = join(dir, "purge.dlq");
    const store = new DirectoryDeadLetterStore(storePath);
    await pool.batch(client.score, [{ id: 0, failEvery: 1 }, { id: 1, failEvery: 1 }, { id: 2, failEvery: 1 }], { deadLetters: store });
    const [first] = await store.list();
    expect(await dlq("purge", "--store", storePath, "--id", first.id)).toMatchObject({ code: 0, stdout: "removed 1 dead letter(s)\n" });
    expect(await store.list()).toHaveLength(2);
    expect(await dlq("purge", "--store", storePath)).toMatchObject({ code: 0, stdout: "removed 2 dead letter(s)\n" });
    expect(await store.list()).toEqual([]);
    const usage = await dlq("list");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--store <path> is required/);
    const noEntry = await dlq("replay", "--store", storePath);
    expect(noEntry.code).toBe(2);
    expect(noEntry.stderr).toMatch(/give --script <file> or --module <name>/);
  });

  test("procgrpc dlq migrate moves a JSON-lines file's letters (ids kept) into a directory store; list and show read both kinds", async () => {
    const oldPath = join(dir, "legacy.dlq.jsonl");
    const newPath = join(dir, "migrated.dlq");
    const legacy = new JsonlDeadLetterStore(oldPath);
    await pool.batch(client.score, [{ id: 0, failEvery: 1 }, { id: 1, failEvery: 1 }], { deadLetters: legacy });
    const before = await legacy.list();
    const listed = await dlq("list", "--store", oldPath, "--json");
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((l) => l.id).sort()).toEqual(before.map((l) => l.id).sort());
    expect(await dlq("migrate", "--store", newPath)).toMatchObject({ code: 2 });
    expect(await dlq("migrate", "--from", oldPath, "--store", newPath)).toMatchObject({ code: 0, stdout: `moved 2 dead letter(s) from ${oldPath} to ${newPath}\n` });
    expect(await legacy.list()).toEqual([]);
    const migrated = new DirectoryDeadLetterStore(newPath);
    expect((await migrated.list()).sort((a, b) => a.id.localeCompare(b.id))).toEqual(before.sort((a, b) => a.id.localeCompare(b.id)));
    const shown = await dlq("show", before[0].id, "--store", newPath);
    expect(JSON.parse(shown.stdout)).toEqual(before[0]);
  });

  test("a failing batch never aborts: a cancelled batch reports the items it did not run as CANCELLED, not dead letters", async () => {
    const store = new DirectoryDeadLetterStore(join(dir, "cancel.dlq"));
    const controller = new AbortController();
    const requests = Array.from({ length: 40 }, (_, id) => ({ id, ms: 50 }));
    const result = await pool.batch(client.score, requests, {
      concurrency: 2,
      signal: controller.signal,
      deadLetters: store,
      onProgress: (p) => {
        if (p.done === 4) controller.abort();
      },
    });
    expect(result.succeeded.length + result.failed.length).toBe(40);
    expect(result.succeeded.length).toBeGreaterThanOrEqual(4);
    expect(result.failed.length).toBeGreaterThan(0);
    for (const f of result.failed) expect(f.error.code()).toBe(Status.CANCELLED);
    expect(await store.list()).toEqual([]);
  });
});

describe("replay killed midway", () => {
  const pool = new WorkerPool(resiliencePool({ workers: 1 }));
  const client = pool.client(ResilienceTestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("SIGKILL during `procgrpc dlq replay` loses no record: each is still in the store or was replayed once and removed", async () => {
    const storePath = join(dir, "crash.dlq");
    const fixed = join(dir, "crash-fixed");
    const scored = join(dir, "crash-ledger");
    const store = new DirectoryDeadLetterStore(storePath);
    const requests = Array.from({ length: 40 }, (_, id) => ({ id, failEvery: 1, fixedFlagPath: fixed, ledgerPath: scored, ms: 100 }));
    // Every id is divisible by 1: all fail (quickly: the work happens after the check only when fixed).
    const result = await pool.batch(client.score, requests, { concurrency: 8, deadLetters: store });
    expect(result.failed).toHaveLength(40);
    const original = await store.list();
    expect(original).toHaveLength(40);
    writeFileSync(fixed, "");

    const child = spawn(CLI[0], [...CLI.slice(1), "replay", "--store", storePath, ...POOL_FLAGS, "--concurrency", "2"], { cwd: ROOT, stdio: "ignore" });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    expect(await eventually(() => ledger(scored).length >= 8, 40000)).toBe(true);
    child.kill("SIGKILL");
    await exited;

    const left = new Set((await store.list()).map((l) => l.id));
    const replayedOnce = counts(ledger(scored));
    expect(left.size).toBeGreaterThan(0); // killed midway, not at the end
    expect(left.size).toBeLessThan(40);
    for (const letter of original) {
      const id = (letter.requestJson as { id: number }).id;
      if (left.has(letter.id)) expect(replayedOnce.get(id) ?? 0).toBeLessThanOrEqual(1);
      else expect(replayedOnce.get(id)).toBe(1);
    }

    // Replaying again finishes the job; letters removed the first time are not sent again.
    const again = await dlq("replay", "--store", storePath, ...POOL_FLAGS, "--json");
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ replayed: left.size, remaining: 0 });
    const final = counts(ledger(scored));
    for (const letter of original) {
      const id = (letter.requestJson as { id: number }).id;
      expect(final.get(id)).toBeGreaterThanOrEqual(1);
      if (!left.has(letter.id)) expect(final.get(id)).toBe(1);
    }
  });
});
