// Watch mode with real workers under steady load: editing the servicer file replaces the workers
// one at a time with no failed call and the new code answers afterwards; an edit that breaks the
// worker keeps the old workers serving and logs why; fixing it reloads again.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkerPool, type RpcError } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { WORKERS, eventually, isAlive, testingPool } from "./helpers/env";
import { memoryLogger } from "./helpers/memory-logger";
import { recordEvents } from "./helpers/supervision";

jest.setTimeout(180_000);

const dir = mkdtempSync(join(tmpdir(), "procgrpc-reload-"));
const servicer = join(dir, "servicer.py");
copyFileSync(join(WORKERS, "reloadable_worker.py"), servicer);
const logger = memoryLogger();
const pool = new WorkerPool(testingPool({ workers: 2, script: servicer, env: { PROCGRPC_TEST_WORKERS: WORKERS }, watch: { debounceMs: 100 }, logger }));
const client = pool.client(TestServiceDefinition);
const events = recordEvents(pool);

afterAll(async () => {
  await pool.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

/** Rewrites the servicer's VERSION line (or the whole file) the way an editor saves it. */
function edit(change: (source: string) => string): void {
  writeFileSync(servicer, change(readFileSync(servicer, "utf8")));
}

test("editing the servicer under load: workers replaced one at a time, zero failed calls, the new code answers; a broken edit keeps the old workers", async () => {
  await pool.start();
  expect(await eventually(() => logger.entries.some((e) => e.msg?.startsWith("watching for changes")), 20_000)).toBe(true);
  expect(logger.entries.find((e) => e.msg?.startsWith("watching for changes"))?.fields.paths).toEqual([dir]);
  const firstPids = pool.health().workers.map((w) => w.pid as number);

  // Steady load: 4 callers, each call right after the previous answer.
  const failures: RpcError[] = [];
  const answers: { text: string; at: number }[] = [];
  let stop = false;
  let seq = 0;
  const callers = Array.from({ length: 4 }, async () => {
    while (!stop) {
      const n = ++seq;
      try {
        const reply = await client.echo({ text: String(n) });
        answers.push({ text: reply.text, at: n });
      } catch (err) {
        failures.push(err as RpcError);
      }
      await new Promise((r) => setTimeout(r, 1)); // pace the load: a steady stream, not a CPU hog
    }
  });
  const versionOf = (text: string): string => text.split(":")[0];
  const answeredSince = (from: number): string[] => answers.filter((a) => a.at > from).map((a) => versionOf(a.text));
  expect(await eventually(() => answers.length >= 50, 30_000)).toBe(true);
  expect(new Set(answers.map((a) => versionOf(a.text)))).toEqual(new Set(["v1"]));

  // 1. A good edit: both workers are replaced, one after the other.
  const recycled = (): { workerId: string; reason: string; oldPid: number; newPid: number }[] => events.filter((e) => e.name === "workerRecycled").map((e) => e.payload as never);
  const beforeEdit = seq;
  edit((s) => s.replace('VERSION = "v1"', 'VERSION = "v2"'));
  expect(await eventually(() => recycled().length === 2, 60_000)).toBe(true);
  expect(recycled().map((r) => [r.workerId, r.reason])).toEqual([["w0", "reload"], ["w1", "reload"]]);
  const afterReload = seq;
  expect(await eventually(() => answeredSince(afterReload).length >= 20, 30_000)).toBe(true);
  expect(new Set(answeredSince(afterReload))).toEqual(new Set(["v2"])); // only the new code answers now
  expect(answers.filter((a) => a.at > beforeEdit && a.at <= afterReload).length).toBeGreaterThan(0); // calls ran during the swap
  for (const pid of firstPids) expect(await eventually(() => !isAlive(pid), 20_000)).toBe(true);
  // Each new worker was SERVING before its old one stopped taking calls; w1's replacement started only after w0's old process was gone.
  const at = (match: (e: (typeof events)[number]) => boolean): number => events.findIndex(match);
  for (const r of recycled()) {
    const ready = at((e) => e.name === "workerReady" && e.payload.pid === r.newPid);
    const draining = at((e) => e.name === "workerState" && e.payload.pid === r.oldPid && e.payload.to === "draining");
    expect(ready).toBeGreaterThanOrEqual(0);
    expect(ready).toBeLessThan(draining);
  }
  const [w0, w1] = recycled();
  expect(at((e) => e.name === "workerExit" && e.payload.pid === w0.oldPid)).toBeLessThan(at((e) => e.payload.pid === w1.newPid));
  expect(pool.health().ready).toBe(2);

  // 2. An edit that breaks the worker: the replacement fails to start, the old workers keep serving v2.
  const pidsBeforeBreak = pool.health().workers.map((w) => w.pid);
  const errorsBefore = logger.entries.filter((e) => e.level === "error").length;
  edit((s) => s.replace("class ReloadableService", "class ReloadableService(:"));
  expect(await eventually(() => logger.entries.some((e) => e.msg?.startsWith("reload failed")), 60_000)).toBe(true);
  const failure = logger.entries.find((e) => e.msg?.startsWith("reload failed"));
  expect(failure?.level).toBe("error");
  expect((failure?.fields.stderrTail as string[]).join("\n")).toContain("SyntaxError");
  expect(logger.entries.filter((e) => e.level === "error").length).toBeGreaterThan(errorsBefore);
  const afterBreak = seq;
  expect(await eventually(() => answeredSince(afterBreak).length >= 20, 30_000)).toBe(true);
  expect(new Set(answeredSince(afterBreak))).toEqual(new Set(["v2"]));
  expect(pool.health().workers.map((w) => w.pid)).toEqual(pidsBeforeBreak);

  // 3. Fixed: the next change reloads again.
  edit((s) => s.replace("class ReloadableService(:", "class ReloadableService").replace('VERSION = "v2"', 'VERSION = "v3"'));
  expect(await eventually(() => recycled().length === 4, 60_000)).toBe(true);
  const afterFix = seq;
  expect(await eventually(() => answeredSince(afterFix).length >= 20, 30_000)).toBe(true);
  expect(new Set(answeredSince(afterFix))).toEqual(new Set(["v3"]));

  stop = true;
  await Promise.all(callers);
  expect(failures.map((e) => `${e.code()} ${e.details()}`)).toEqual([]);
  console.log(`watch reload: ${answers.length} calls, 0 failed, across 2 reloads and 1 failed reload`);
});
