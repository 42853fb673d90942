/**
 * The dead-letter stores on their own: claims (exclusive, settled once, taken over from a dead
 * owner), the owner identity and its liveness rules, the JSON-lines store's incremental reads,
 * file modes under every umask, and a batch whose store cannot write.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  DirectoryDeadLetterStore,
  JsonlDeadLetterStore,
  MemoryDeadLetterStore,
  RpcError,
  Status,
  replayDeadLetters,
  WorkerPool,
  supportsClaims,
  type DeadLetter,
  type DeadLetterStore,
  type UnaryRunner,
} from "../src";
import { formatOwner, ownerIsDead, parseOwner, parseProcStat, thisMachine, type ClaimOwner, type OwnerEnvironment } from "../src/resilience/claim-owner";
import { DirSyncer } from "../src/resilience/private-files";
import { ResilienceTestServiceDefinition } from "../src/gen/testing/v1/resilience";
import { WORKERS } from "./helpers/env";
import { resiliencePool, stateDir } from "./helpers/resilience";

const dir = stateDir("pgdls-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let seq = 0;
function letter(id = `l-${++seq}`): DeadLetter {
  return {
    id,
    method: "/testing.v1.ResilienceTestService/Score",
    request: "",
    requestJson: { id: seq },
    code: Status.UNAVAILABLE,
    codeName: "UNAVAILABLE",
    details: "down",
    category: "worker",
    attempts: 1,
    firstFailureAt: new Date(0).toISOString(),
    lastFailureAt: new Date(0).toISOString(),
    replays: 0,
  };
}
const failure = { code: Status.INTERNAL, codeName: "INTERNAL", details: "still broken", category: "worker" as const, attempts: 2, at: new Date(1000).toISOString() };

describe("claim owners", () => {
  const self: ClaimOwner = { host: "0123abcd", boot: "feedbeef", pid: 4242, start: "987654" };
  const env = (probe: OwnerEnvironment["probe"]): OwnerEnvironment => ({ self, probe });

  test("format and parse round-trip; anything else is refused", () => {
    expect(parseOwner(formatOwner(self))).toEqual(self);
    expect(parseOwner(formatOwner({ ...self, boot: "-", start: "-" }))).toEqual({ ...self, boot: "-", start: "-" });
    for (const bad of ["", "x", "0123abcd.feedbeef.0.1", "0123abcd.feedbeef.12.1~x", "0123ABCD.feedbeef.1.1", "../../etc.feedbeef.1.1"]) expect(parseOwner(bad)).toBeUndefined();
  });

  test("/proc/<pid>/stat: the start time and state, even with spaces and parentheses in the command", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = "S";
    fields[19] = "123456";
    expect(parseProcStat(`77 (we ird) (x)) ${fields.join(" ")}`)).toEqual({ state: "S", start: "123456" });
    expect(parseProcStat("garbage")).toBeUndefined();
  });

  test("dead only when certain: gone, zombie, pid reused (other start), rebooted; another host never", () => {
    const alive = env(() => ({ kind: "alive", start: "987654", zombie: false }));
    expect(ownerIsDead(self, alive)).toBe(false);
    expect(ownerIsDead(self, env(() => ({ kind: "gone" })))).toBe(true);
    expect(ownerIsDead(self, env(() => ({ kind: "alive", start: "987654", zombie: true })))).toBe(true);
    expect(ownerIsDead(self, env(() => ({ kind: "alive", start: "1", zombie: false })))).toBe(true); // the pid was reused
    expect(ownerIsDead({ ...self, boot: "00000000" }, alive)).toBe(true);
    expect(ownerIsDead({ ...self, host: "ffffffff" }, env(() => ({ kind: "gone" })))).toBe(false);
    expect(ownerIsDead(self, env(() => ({ kind: "unknown" })))).toBe(false);
    expect(ownerIsDead({ ...self, start: "-" }, alive)).toBe(false); // pid-only owners (no /proc)
  });

  test("this machine: this process is alive, an exited child is dead", () => {
    const machine = thisMachine();
    expect(ownerIsDead(machine.self, machine)).toBe(false);
    const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    expect(ownerIsDead({ ...machine.self, pid: Number(child.stdout) }, machine)).toBe(true);
  });
});

describe.each([
  { kind: "directory", make: (name: string): DeadLetterStore => new DirectoryDeadLetterStore(join(dir, name)) },
  { kind: "JSON-lines", make: (name: string): DeadLetterStore => new JsonlDeadLetterStore(join(dir, `${name}.jsonl`)) },
  { kind: "memory", make: (): DeadLetterStore => new MemoryDeadLetterStore() },
])("$kind store", ({ kind, make }) => {
  test("add, list, get, recordFailure, remove, purge", async () => {
    const store = make(`crud-${kind}`);
    const [a, b, c] = [letter(), letter(), letter()];
    await store.add(a);
    await store.add(b);
    await store.add(c);
    expect((await store.list()).map((l) => l.id).sort()).toEqual([a.id, b.id, c.id].sort());
    expect(await store.get(b.id)).toEqual(b);
    expect(await store.get("nope")).toBeUndefined();
    await store.recordFailure(b.id, failure);
    expect(await store.get(b.id)).toMatchObject({ code: Status.INTERNAL, attempts: 3, replays: 1, lastFailureAt: failure.at });
    expect(await store.remove(a.id)).toBe(true);
    expect(await store.remove(a.id)).toBe(false);
    expect(await store.purge()).toBe(2);
    expect(await store.list()).toEqual([]);
  });

  test("claims: one claimer per letter; complete removes, release gives it back with the failure; a settled claim cannot settle again", async () => {
    const store = make(`claims-${kind}`);
    expect(supportsClaims(store)).toBe(true);
    if (!supportsClaims(store)) return;
    const [a, b] = [letter(), letter()];
    await store.add(a);
    await store.add(b);
    expect((await store.claimable()).sort()).toEqual([a.id, b.id].sort());
    const ca = await store.claim(a.id);
    expect(ca?.letter).toEqual(a);
    expect(await store.claim(a.id)).toBeUndefined(); // already claimed (here: the same replayer)
    expect(await store.claimable()).toEqual([b.id]);
    expect((await store.list()).length).toBe(2); // a claimed letter is still in the store
    await ca?.complete();
    expect(await store.get(a.id)).toBeUndefined();
    const cb = await store.claim(b.id);
    await cb?.release(failure);
    expect(await store.get(b.id)).toMatchObject({ replays: 1, attempts: 3 });
    expect(await store.claimable()).toEqual([b.id]);
    if (kind !== "memory") await expect(cb?.release()).rejects.toThrow(/already settled/);
    expect(await store.claim("missing")).toBeUndefined();
  });
});

describe("directory store", () => {
  test("two instances (two replayers) never both hold a letter; 200 claims race, each letter claimed once", async () => {
    const path = join(dir, "race");
    const letters = Array.from({ length: 100 }, () => letter());
    await new DirectoryDeadLetterStore(path).addAll(letters);
    const x = new DirectoryDeadLetterStore(path);
    const y = new DirectoryDeadLetterStore(path);
    const claims = await Promise.all(letters.flatMap((l) => [x.claim(l.id), y.claim(l.id)]));
    const won = claims.filter((c) => c !== undefined);
    expect(won).toHaveLength(100);
    expect(new Set(won.map((c) => c?.letter.id)).size).toBe(100);
    await Promise.all(won.map((c) => c?.complete()));
    expect(await x.count()).toBe(0);
  });

  test("a claim whose owner is dead (pid gone, or pid reused by another process) is claimable and taken over once", async () => {
    const path = join(dir, "stale");
    const store = new DirectoryDeadLetterStore(path);
    const [a, b, live] = [letter(), letter(), letter()];
    await store.addAll([a, b, live]);
    const machine = thisMachine();
    const exited = Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);
    const claimAs = (l: DeadLetter, owner: ClaimOwner): void => renameSync(join(path, "ready", `${l.id}.json`), join(path, "claimed", `${l.id}~${formatOwner(owner)}.json`));
    claimAs(a, { ...machine.self, pid: exited });
    claimAs(b, { ...machine.self, start: "1" }); // this pid, another process's start time
    claimAs(live, machine.self);
    const claims = await store.claims();
    expect(claims.map((c) => [c.id, c.ownerDead]).sort()).toEqual([[a.id, true], [b.id, true], [live.id, false]].sort());
    expect((await store.claimable()).sort()).toEqual([a.id, b.id].sort());
    const other = new DirectoryDeadLetterStore(path);
    const [t1, t2] = await Promise.all([store.claim(a.id), other.claim(a.id)]);
    expect([t1, t2].filter(Boolean)).toHaveLength(1);
    expect(await store.claim(live.id)).toBeUndefined();
    expect(await store.count()).toBe(3);
  });

  test("ids become file names only when they are plain", async () => {
    const store = new DirectoryDeadLetterStore(join(dir, "ids"));
    await expect(store.add(letter("../escape"))).rejects.toThrow(TypeError);
    await expect(store.add(letter(".hidden"))).rejects.toThrow(TypeError);
    expect(await store.get("../x")).toBeUndefined();
    expect(await store.remove("a/b")).toBe(false);
  });

  test("a damaged file is skipped and counted, not fatal", async () => {
    const path = join(dir, "damaged");
    const store = new DirectoryDeadLetterStore(path);
    await store.add(letter());
    writeFileSync(join(path, "ready", "junk.json"), "{not json");
    expect(await store.list()).toHaveLength(1);
    expect(store.skippedFiles).toBe(1);
  });

  test("coalesced directory syncs: many callers, each resolved after a sync that began after its call", async () => {
    const syncer = new DirSyncer(dir);
    await Promise.all(Array.from({ length: 50 }, () => syncer.sync()));
  });
});

describe("JSON-lines store", () => {
  test("reads only what was appended; follows another writer's appends and a rewrite by compaction; a torn line is skipped", async () => {
    const path = join(dir, "incremental.jsonl");
    const mine = new JsonlDeadLetterStore(path);
    const theirs = new JsonlDeadLetterStore(path);
    const [a, b, c] = [letter(), letter(), letter()];
    await mine.add(a);
    await theirs.add(b);
    expect((await mine.list()).map((l) => l.id)).toEqual([a.id, b.id]);
    await theirs.remove(a.id);
    await theirs.recordFailure(b.id, failure);
    expect(await mine.get(a.id)).toBeUndefined();
    expect(await mine.get(b.id)).toMatchObject({ replays: 1 });
    await theirs.compact(); // a new file (inode) with the same letters
    await mine.add(c);
    expect((await mine.list()).map((l) => [l.id, l.replays])).toEqual([[b.id, 1], [c.id, 0]]);
    writeFileSync(path, readFileSync(path, "utf8") + '{"op":"add","letter":{"id":"torn');
    const reader = new JsonlDeadLetterStore(path);
    expect(await reader.list()).toHaveLength(2);
    await reader.add(letter()); // starts on a fresh line: the torn one is skipped, not merged
    expect(await new JsonlDeadLetterStore(path).list()).toHaveLength(3);
  });

  test("an existing file from an older version stays readable and replayable, and is narrowed to 0600 at its next write", async () => {
    const path = join(dir, "old.jsonl");
    const l = letter();
    writeFileSync(path, `${JSON.stringify({ op: "add", letter: l })}\n${JSON.stringify({ op: "fail", id: l.id, failure })}\n`, { mode: 0o644 });
    chmodSync(path, 0o644);
    const store = new JsonlDeadLetterStore(path);
    expect(await store.list()).toEqual([{ ...l, code: Status.INTERNAL, codeName: "INTERNAL", details: "still broken", attempts: 3, replays: 1, lastFailureAt: failure.at }]);
    await store.add(letter());
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});

describe("file modes: 0600 files in 0700 directories from the first write, whatever the umask", () => {
  const modes = (root: string): Map<string, number> => {
    const out = new Map<string, number>([[root, statSync(root).mode & 0o777]]);
    for (const name of readdirSync(root, { recursive: true }) as string[]) out.set(name, statSync(join(root, name)).mode & 0o777);
    return out;
  };
  const canUmask = (() => {
    try {
      process.umask(process.umask());
      return true;
    } catch {
      return false; // a worker thread: cannot change the umask
    }
  })();

  (canUmask ? test.each([0o022, 0o000, 0o077, 0o277]) : test.skip.each([0o022]))("umask %o", async (umask) => {
    const previous = process.umask(umask);
    try {
      const root = join(dir, `modes-${umask.toString(8)}`);
      const store = new DirectoryDeadLetterStore(join(root, "spool"));
      const [a, b] = [letter(), letter()];
      await store.add(a);
      await store.addAll([b]);
      const claim = await store.claim(a.id);
      await claim?.release(failure);
      await store.recordFailure(b.id, failure);
      const jsonl = new JsonlDeadLetterStore(join(root, "new-parent", "dlq.jsonl"));
      await jsonl.add(letter());
      await jsonl.claim((await jsonl.claimable())[0]).then((c) => c?.release(failure));
      await jsonl.compact();

      for (const [name, mode] of modes(join(root, "spool"))) {
        const isDir = statSync(name.startsWith("/") ? name : join(root, "spool", name)).isDirectory();
        expect([name, mode]).toEqual([name, isDir ? 0o700 : 0o600]);
      }
      expect(statSync(join(root, "new-parent")).mode & 0o777).toBe(0o700);
      expect(statSync(join(root, "new-parent", "dlq.jsonl")).mode & 0o777).toBe(0o600);
      expect(statSync(join(root, "new-parent", "dlq.jsonl.replay-lock")).mode & 0o777).toBe(0o700);
    } finally {
      process.umask(previous);
    }
  });

  test("an existing spool directory made 0755 by hand is narrowed to 0700 at the first write", async () => {
    const path = join(dir, "wide");
    mkdirSync(path, { mode: 0o755 });
    chmodSync(path, 0o755);
    await new DirectoryDeadLetterStore(path).add(letter());
    expect(statSync(path).mode & 0o777).toBe(0o700);
  });
});

describe("a batch whose dead-letter store cannot write", () => {
  const pool = new WorkerPool(resiliencePool({ workers: 1, script: join(WORKERS, "dlq_worker.py") }));
  const client = pool.client(ResilienceTestServiceDefinition);
  beforeAll(() => pool.start());
  afterAll(() => pool.shutdown());

  test("a real filesystem error (the store's path runs through a file): the batch resolves with every result, each refused letter handed back", async () => {
    const blocker = join(dir, "not-a-dir");
    writeFileSync(blocker, "");
    const store = new DirectoryDeadLetterStore(join(blocker, "dlq"));
    const requests = Array.from({ length: 20 }, (_, id) => ({ id, failEvery: 4 }));
    const events: unknown[] = [];
    pool.resilience.on("deadLetter", (e) => events.push(e));
    const result = await pool.batch(client.score, requests, { concurrency: 4, deadLetters: store });
    expect(result.succeeded.map((s) => s.index)).toEqual(requests.filter((r) => r.id % 4 !== 0).map((r) => r.id));
    expect(result.failed.map((f) => f.index)).toEqual([0, 4, 8, 12, 16]);
    for (const f of result.failed) {
      expect(f.error.code()).toBe(Status.INVALID_ARGUMENT);
      expect((f.deadLetterError as NodeJS.ErrnoException).code).toBe("ENOTDIR");
    }
    expect(result.deadLetterIds).toEqual([]);
    expect(result.deadLetterErrors.map((e) => e.index)).toEqual([0, 4, 8, 12, 16]);
    for (const e of result.deadLetterErrors) expect(e.letter).toMatchObject({ method: "/testing.v1.ResilienceTestService/Score", codeName: "INVALID_ARGUMENT", source: { batchIndex: e.index } });
    expect(events).toEqual([]); // nothing was dead-lettered, so nothing is counted as such
  });

  test("a store that fails some writes (disk full): the written ones are listed, the others reported on their items", async () => {
    const inner = new MemoryDeadLetterStore();
    let n = 0;
    const flaky: DeadLetterStore = {
      ...inner,
      list: () => inner.list(),
      get: (id) => inner.get(id),
      remove: (id) => inner.remove(id),
      recordFailure: (id, f) => inner.recordFailure(id, f),
      purge: () => inner.purge(),
      add: async (l) => {
        if (++n % 2 === 0) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        await inner.add(l);
      },
    };
    const requests = Array.from({ length: 12 }, (_, id) => ({ id, failEvery: 1 }));
    const result = await pool.batch(client.score, requests, { concurrency: 1, deadLetters: flaky });
    expect(result.succeeded).toEqual([]);
    expect(result.failed).toHaveLength(12);
    expect(result.deadLetterIds).toHaveLength(6);
    expect(result.deadLetterErrors).toHaveLength(6);
    expect(new Set([...result.deadLetterIds, ...result.deadLetterErrors.map((e) => e.letter?.id)]).size).toBe(12);
    expect((await inner.list()).map((l) => l.id).sort()).toEqual([...result.deadLetterIds].sort());
    expect(result.failed.filter((f) => f.deadLetterError).map((f) => f.index)).toEqual(result.deadLetterErrors.map((e) => e.index));
  });
});

describe("replayDeadLetters with an in-process runner", () => {
  /** Answers each call when the test says so; counts sends per request payload. */
  function gatedRunner(): { runner: UnaryRunner; sent: Map<string, number>; open: () => void } {
    const sent = new Map<string, number>();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const runner: UnaryRunner = {
      unary: async (_method, request, options) => {
        const key = Buffer.from(request as Buffer).toString();
        sent.set(key, (sent.get(key) ?? 0) + 1);
        await Promise.race([gate, new Promise((_, reject) => options?.signal?.addEventListener("abort", () => reject(new RpcError({ code: Status.CANCELLED, details: "cancelled", category: "cancelled", method: "m", reachedWorker: true, attempts: 1, attemptCodes: [] }))))]);
        return undefined as never;
      },
    };
    return { runner, sent, open: release };
  }
  const withRequest = (i: number): DeadLetter => ({ ...letter(), request: Buffer.from(`r${i}`).toString("base64") });

  test.each(["directory", "memory"])("two replays of one %s store at once: every letter sent once, the rest skipped", async (kind) => {
    const store = kind === "memory" ? new MemoryDeadLetterStore() : new DirectoryDeadLetterStore(join(dir, "two-replays"));
    for (let i = 0; i < 30; i += 1) await store.add(withRequest(i));
    const { runner, sent, open } = gatedRunner();
    const first = replayDeadLetters(store, runner, { concurrency: 4 });
    const second = replayDeadLetters(kind === "memory" ? store : new DirectoryDeadLetterStore(join(dir, "two-replays")), runner, { concurrency: 4 });
    open();
    const [a, b] = await Promise.all([first, second]);
    expect(a.succeeded.length + b.succeeded.length).toBe(30);
    expect(new Set([...a.succeeded, ...b.succeeded]).size).toBe(30);
    expect([...sent.values()].every((n) => n === 1)).toBe(true);
    expect(sent.size).toBe(30);
    expect(a.skipped.length + b.skipped.length).toBe(30);
    expect(await store.list()).toEqual([]);
  });

  test("aborting stops new claims; letters in flight go back unchanged (not counted as failed replays)", async () => {
    const store = new DirectoryDeadLetterStore(join(dir, "abort"));
    for (let i = 0; i < 10; i += 1) await store.add(withRequest(i));
    const { runner, sent } = gatedRunner();
    const controller = new AbortController();
    const replay = replayDeadLetters(store, runner, { concurrency: 2, signal: controller.signal });
    while (sent.size < 2) await new Promise((r) => setImmediate(r));
    controller.abort();
    const result = await replay;
    expect(result.succeeded).toEqual([]);
    expect(result.failed).toHaveLength(2);
    expect(await store.claims()).toEqual([]);
    const letters = await store.list();
    expect(letters).toHaveLength(10);
    expect(letters.every((l) => l.replays === 0)).toBe(true);
  });

  test("an id that is not in the store is a clear error; a store that cannot write rejects after the lanes in flight", async () => {
    const store = new MemoryDeadLetterStore();
    await store.add(letter());
    const runner: UnaryRunner = { unary: async () => undefined as never };
    await expect(replayDeadLetters(store, runner, { ids: ["nope"] })).rejects.toThrow(/no dead letter with id nope/);
    const broken = new MemoryDeadLetterStore();
    for (let i = 0; i < 5; i += 1) await broken.add(letter());
    const claim = broken.claim.bind(broken);
    broken.claim = async (id) => {
      const c = await claim(id);
      return c && { ...c, complete: () => Promise.reject(new Error("EIO: i/o error")) };
    };
    await expect(replayDeadLetters(broken, runner, { concurrency: 2 })).rejects.toThrow("EIO");
  });
});
