/**
 * Replays as real processes: two `procgrpc dlq replay` CLIs at once, a replayer SIGKILLed midway
 * and a second replay after it, and a replay while the application writes new letters, against
 * real workers whose servicer records every execution (`done <id>` in a ledger). A letter sent
 * twice shows up as two `done` lines.
 */
import { spawn } from "node:child_process";
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DirectoryDeadLetterStore, JsonlDeadLetterStore, RpcError, Status, runBatch, type DeadLetterStore } from "../src";
import { ResilienceTestServiceDefinition } from "../src/gen/testing/v1/resilience";
import { unaryMethodOf } from "../src/call/method";
import { PYTHON, ROOT, WORKERS, eventually, isAlive } from "./helpers/env";
import { ledger, stateDir } from "./helpers/resilience";

jest.setTimeout(180_000);

const dir = stateDir("pgdlq-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CLI = ["--import", "tsx", join(ROOT, "src", "cli", "main.ts"), "dlq"];
const POOL_FLAGS = ["--python", PYTHON, "--script", join(WORKERS, "dlq_worker.py"), "--workers", "2"];
const score = unaryMethodOf(ResilienceTestServiceDefinition.fullName, ResilienceTestServiceDefinition.methods.score);

interface Run {
  pid: number;
  kill: () => void;
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function replayProcess(store: string, ...extra: string[]): Run {
  const child = spawn(process.execPath, [...CLI, "replay", "--store", store, ...POOL_FLAGS, "--json", ...extra], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
  return { pid: child.pid ?? -1, kill: () => child.kill("SIGKILL"), exited };
}

/**
 * Writes `n` dead letters through the application's batch path (`runBatch`, as pool.batch does);
 * each letter's request is a Score that will succeed on replay, logging to `ledgerPath`.
 */
async function writeLetters(store: DeadLetterStore, first: number, n: number, ledgerPath: string, ms: number): Promise<void> {
  const requests = Array.from({ length: n }, (_, i) => ({ id: first + i, failEvery: 0, fixedFlagPath: "", ledgerPath, ms }));
  const refused = (): Promise<never> => Promise.reject(new RpcError({ code: Status.UNAVAILABLE, details: "the scorer was down", category: "worker", method: score.path, reachedWorker: true, attempts: 3, attemptCodes: [] }));
  const result = await runBatch(refused, score as never, requests, { concurrency: 8, deadLetters: store });
  expect(result.deadLetterIds).toHaveLength(n);
  expect(result.deadLetterErrors).toEqual([]);
}

/** `done` / `start` lines per letter id, and the worker pids that logged them. */
function executions(path: string): { done: Map<number, number>; started: Map<number, number>; pids: Set<number> } {
  const done = new Map<number, number>();
  const started = new Map<number, number>();
  const pids = new Set<number>();
  for (const line of ledger(path)) {
    const [what, id, pid] = line.split(" ");
    const m = what === "done" ? done : started;
    m.set(Number(id), (m.get(Number(id)) ?? 0) + 1);
    pids.add(Number(pid));
  }
  return { done, started, pids };
}

/** The pids of `parent`'s children (its Python workers), from /proc. */
function childrenOf(parent: number): Set<number> {
  const out = new Set<number>();
  for (const name of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      if (/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${name}/status`, "utf8"))?.[1] === String(parent)) out.add(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Whether one of `replayer`'s own workers has logged a start. */
function hasStarted(path: string, replayer: Run): boolean {
  const workers = childrenOf(replayer.pid);
  return [...executions(path).pids].some((p) => workers.has(p));
}

const KINDS = [
  { kind: "directory", make: (name: string) => new DirectoryDeadLetterStore(join(dir, name)), path: (name: string) => join(dir, name) },
  { kind: "JSON-lines", make: (name: string) => new JsonlDeadLetterStore(join(dir, `${name}.jsonl`)), path: (name: string) => join(dir, `${name}.jsonl`) },
] as const;

describe.each(KINDS)("$kind store", ({ kind, make, path }) => {
  test("two `procgrpc dlq replay` processes at once: 120 letters, every one executed exactly once", async () => {
    const name = `concurrent-${kind === "directory" ? "d" : "j"}`;
    const scored = join(dir, `${name}.ledger`);
    const store = make(name);
    await writeLetters(store, 0, 120, scored, -1); // each call waits at the gate until it opens

    const a = replayProcess(path(name));
    // A has letters in flight (claimed, held at the gate) before B starts.
    expect(await eventually(() => executions(scored).started.size >= 2, 60_000)).toBe(true);
    const b = replayProcess(path(name));
    let bResult: { code: number | null; stdout: string; stderr: string } | undefined;
    if (kind === "directory") {
      // B claims letters A has not claimed and starts them too (one of B's own workers logs a
      // start): both replay at once.
      expect(await eventually(() => hasStarted(scored, b), 60_000)).toBe(true);
    } else {
      // A holds the file while it has letters in flight: B sends nothing and says so.
      bResult = await b.exited;
    }
    writeFileSync(`${scored}.open`, "");
    const aResult = await a.exited;
    bResult ??= await b.exited;
    expect(aResult.stderr).toBe("");
    expect(bResult.stderr).toBe("");
    expect([aResult.code, bResult.code]).toEqual([0, 0]);
    const outA = JSON.parse(aResult.stdout) as { replayed: number; skipped: number };
    const outB = JSON.parse(bResult.stdout) as { replayed: number; skipped: number };
    expect(outA.replayed + outB.replayed).toBe(120);
    if (kind === "directory") {
      expect(outA.replayed).toBeGreaterThan(0);
      expect(outB.replayed).toBeGreaterThan(0);
    } else {
      expect(outB).toMatchObject({ replayed: 0, skipped: 120 });
    }

    const { done } = executions(scored);
    expect(done.size).toBe(120);
    expect([...done.values()].every((n) => n === 1)).toBe(true);
    expect(await store.list()).toEqual([]);
  });

  test("a replayer SIGKILLed mid-replay: the next replay takes over its claims; nothing lost, only its in-flight letters sent twice", async () => {
    const name = `killed-${kind === "directory" ? "d" : "j"}`;
    const scored = join(dir, `${name}.ledger`);
    const store = make(name);
    await writeLetters(store, 0, 40, scored, -1);

    const a = replayProcess(path(name), "--concurrency", "4");
    expect(await eventually(() => executions(scored).started.size >= 2, 60_000)).toBe(true);
    const aWorkers = childrenOf(a.pid);
    expect([...executions(scored).pids].every((p) => aWorkers.has(p))).toBe(true);
    a.kill();
    await a.exited;
    // The dead replayer's workers go too (parent death); their calls were cancelled at the gate.
    // Only then is every start A's calls will ever log in the ledger.
    expect(await eventually(() => [...aWorkers].every((p) => !isAlive(p)), 30_000)).toBe(true);
    const inFlight = new Set(executions(scored).started.keys());
    expect(executions(scored).done.size).toBe(0);
    expect((await store.list()).length).toBe(40);
    if (store instanceof DirectoryDeadLetterStore) {
      const claims = await store.claims();
      expect(claims.length).toBeGreaterThanOrEqual(inFlight.size);
      expect(claims.length).toBeLessThanOrEqual(4); // never more than its concurrency
      expect(claims.every((c) => c.owner.pid === a.pid && c.ownerDead)).toBe(true);
    }

    writeFileSync(`${scored}.open`, "");
    const b = await replayProcess(path(name)).exited;
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({ replayed: 40, skipped: 0, remaining: 0 });
    const { done, started } = executions(scored);
    expect(done.size).toBe(40);
    expect([...done.values()].every((n) => n === 1)).toBe(true);
    for (const [id, n] of started) expect(n).toBe(inFlight.has(id) ? 2 : 1);
    expect(await store.list()).toEqual([]);
  });
});

test("a replay while the application keeps writing letters to the same directory: each letter executed once, none lost", async () => {
  const name = "app-writes";
  const scored = join(dir, `${name}.ledger`);
  const store = new DirectoryDeadLetterStore(join(dir, name));
  await writeLetters(store, 0, 30, scored, -1);
  const first = replayProcess(join(dir, name), "--concurrency", "2");
  expect(await eventually(() => executions(scored).started.size >= 1, 60_000)).toBe(true);
  // The application writes 60 more letters while the replay holds claims.
  await Promise.all([writeLetters(store, 100, 30, scored, 0), writeLetters(new DirectoryDeadLetterStore(join(dir, name)), 200, 30, scored, 0)]);
  writeFileSync(`${scored}.open`, "");
  const firstResult = await first.exited;
  expect(firstResult.code).toBe(0);
  const second = await replayProcess(join(dir, name)).exited;
  expect(second.code).toBe(0);
  const replayed = (JSON.parse(firstResult.stdout) as { replayed: number }).replayed + (JSON.parse(second.stdout) as { replayed: number }).replayed;
  expect(replayed).toBe(90);
  const { done } = executions(scored);
  expect(done.size).toBe(90);
  expect([...done.values()].every((n) => n === 1)).toBe(true);
  expect(await store.count()).toBe(0);
  for (const id of [...done.keys()]) expect(id < 30 || (id >= 100 && id < 130) || (id >= 200 && id < 230)).toBe(true);
});
