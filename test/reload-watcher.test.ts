// Unit tests of the watch-mode reloader (src/pool/reload-watcher.ts): debouncing, one reload at a
// time, failures, ignore rules and option checks with fake timers and a fake file watch; then
// the real watcher (chokidar) on a temp directory. The pool under load is in watch-reload.test.ts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkerStartError } from "../src";
import { ReloadWatcher, defaultWatchPath, resolveWatchOptions, type FileWatchFactory, type ReloadTarget, type WorkerEntry } from "../src/pool/reload-watcher";
import { PYTHON, ROOT, eventually } from "./helpers/env";
import { memoryLogger } from "./helpers/memory-logger";

const ENTRY: WorkerEntry = { python: PYTHON, entry: { script: "/srv/app/worker.py" }, cwd: undefined, env: {} };

/** A file watch the test drives by hand. */
function fakeWatch(): { factory: FileWatchFactory; change: (path: string) => void; ignored: (path: string, isFile: boolean | undefined) => boolean; closed: () => boolean; paths: () => readonly string[] } {
  let onChange: ((path: string) => void) | undefined;
  let isIgnored: ((path: string, isFile: boolean | undefined) => boolean) | undefined;
  let closed = false;
  let watched: readonly string[] = [];
  return {
    factory: (paths, ignore, changed) => {
      watched = paths;
      isIgnored = ignore;
      onChange = changed;
      return { ready: Promise.resolve(), close: () => ((closed = true), Promise.resolve()) };
    },
    change: (path) => onChange?.(path),
    ignored: (path, isFile) => (isIgnored as NonNullable<typeof isIgnored>)(path, isFile),
    closed: () => closed,
    paths: () => watched,
  };
}

/** Workers whose recycles the test resolves or fails one by one. */
function recordingTarget(ids = ["w0", "w1", "w2"]): ReloadTarget & { log: string[]; inFlight: () => number; maxInFlight: () => number; finish: (err?: Error) => void } {
  const log: string[] = [];
  let pending: { resolve: () => void; reject: (e: Error) => void } | undefined;
  let inFlight = 0;
  let maxInFlight = 0;
  return {
    log,
    workers: () => ids,
    recycle: (id) => {
      log.push(id);
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return new Promise<void>((resolve, reject) => (pending = { resolve, reject })).finally(() => (inFlight -= 1));
    },
    inFlight: () => inFlight,
    maxInFlight: () => maxInFlight,
    finish: (err) => {
      const p = pending;
      pending = undefined;
      if (err) p?.reject(err);
      else p?.resolve();
    },
  };
}

/** Lets promise callbacks run (fake timers do not move). */
const turn = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe("with fake timers", () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  async function started(target: ReloadTarget, debounceMs = 300): Promise<{ watcher: ReloadWatcher; fs: ReturnType<typeof fakeWatch>; logger: ReturnType<typeof memoryLogger> }> {
    const fs = fakeWatch();
    const logger = memoryLogger();
    const watcher = new ReloadWatcher({ paths: undefined, debounceMs, extensions: [".py"] }, ENTRY, logger, target, fs.factory);
    await watcher.start();
    return { watcher, fs, logger };
  }

  test("the default path is the script's directory; changes are debounced into one reload that replaces workers one at a time", async () => {
    const target = recordingTarget();
    const { fs, logger } = await started(target);
    expect(fs.paths()).toEqual(["/srv/app"]);
    fs.change("/srv/app/a.py");
    await jest.advanceTimersByTimeAsync(200);
    fs.change("/srv/app/b.py"); // within the quiet time: it restarts the wait
    await jest.advanceTimersByTimeAsync(200);
    expect(target.log).toEqual([]);
    await jest.advanceTimersByTimeAsync(100);
    expect(target.log).toEqual(["w0"]); // one at a time: w1 waits for w0's replacement
    target.finish();
    await turn();
    expect(target.log).toEqual(["w0", "w1"]);
    target.finish();
    await turn();
    target.finish();
    await turn();
    expect(target.log).toEqual(["w0", "w1", "w2"]);
    expect(target.maxInFlight()).toBe(1);
    expect(logger.entries.find((e) => e.msg?.startsWith("files changed"))?.fields.files).toEqual(["/srv/app/a.py", "/srv/app/b.py"]);
    expect(logger.entries.some((e) => e.msg === "reload done")).toBe(true);
  });

  test("reloads never overlap: changes during a reload start one more reload after it, not one per change", async () => {
    const target = recordingTarget(["w0", "w1"]);
    const { fs } = await started(target, 50);
    fs.change("/srv/app/a.py");
    await jest.advanceTimersByTimeAsync(50);
    expect(target.log).toEqual(["w0"]);
    for (let i = 0; i < 3; i++) {
      fs.change(`/srv/app/c${i}.py`);
      await jest.advanceTimersByTimeAsync(60);
    }
    expect(target.log).toEqual(["w0"]); // still the first reload
    target.finish();
    await turn();
    target.finish();
    await turn();
    expect(target.log).toEqual(["w0", "w1", "w0"]); // the second reload, for all three changes
    target.finish();
    await turn();
    target.finish();
    await turn();
    await jest.advanceTimersByTimeAsync(1000);
    expect(target.log).toEqual(["w0", "w1", "w0", "w1"]);
    expect(target.maxInFlight()).toBe(1);
  });

  test("a new worker that fails to start stops the reload (the rest keep their old process) and is logged with its stderr tail; the next change retries", async () => {
    const target = recordingTarget(["w0", "w1"]);
    const { fs, logger } = await started(target, 10);
    fs.change("/srv/app/a.py");
    await jest.advanceTimersByTimeAsync(10);
    target.finish(new WorkerStartError({ workerId: "w0", command: "python worker.py", reason: "exited with code 1", stderrTail: ["  File \"worker.py\", line 3", "SyntaxError: invalid syntax"] }));
    await turn();
    await jest.advanceTimersByTimeAsync(1000);
    expect(target.log).toEqual(["w0"]);
    const failure = logger.entries.find((e) => e.level === "error");
    expect(failure?.msg).toContain("the old workers keep serving");
    expect(failure?.fields).toMatchObject({ workerId: "w0", stderrTail: ["  File \"worker.py\", line 3", "SyntaxError: invalid syntax"] });
    expect(String(failure?.fields.err)).toContain("SyntaxError: invalid syntax");

    fs.change("/srv/app/a.py"); // fixed
    await jest.advanceTimersByTimeAsync(10);
    target.finish();
    await turn();
    target.finish();
    await turn();
    expect(target.log).toEqual(["w0", "w0", "w1"]);
  });

  test("a worker that is not running (restarting) is skipped; the others are still replaced", async () => {
    const target = recordingTarget(["w0", "w1"]);
    const { fs, logger } = await started(target, 10);
    fs.change("/srv/app/a.py");
    await jest.advanceTimersByTimeAsync(10);
    target.finish(new Error("worker w0 is restarting; only a running worker can be recycled"));
    await turn();
    expect(target.log).toEqual(["w0", "w1"]);
    target.finish();
    await turn();
    expect(logger.entries.some((e) => e.msg === "reload done")).toBe(true);
  });

  test("stop(): no reload after it, a pending one is dropped, the file watch is closed", async () => {
    const target = recordingTarget();
    const { watcher, fs } = await started(target, 100);
    fs.change("/srv/app/a.py");
    await watcher.stop();
    await jest.advanceTimersByTimeAsync(1000);
    fs.change("/srv/app/b.py");
    await jest.advanceTimersByTimeAsync(1000);
    expect(target.log).toEqual([]);
    expect(fs.closed()).toBe(true);
  });

  test("what counts as a change: files with the extensions, outside dependency, cache and dot directories", async () => {
    const { fs } = await started(recordingTarget());
    expect(fs.ignored("/srv/app", undefined)).toBe(false);
    expect(fs.ignored("/srv/app/servicer.py", true)).toBe(false);
    expect(fs.ignored("/srv/app/notes.txt", true)).toBe(true);
    expect(fs.ignored("/srv/app/notes.txt", undefined)).toBe(false); // asked again with stats
    expect(fs.ignored("/srv/app/pkg", false)).toBe(false);
    for (const dir of ["node_modules", "__pycache__", ".venv", "venv", ".git", "site-packages", ".mypy_cache"]) {
      expect(fs.ignored(`/srv/app/${dir}`, false)).toBe(true);
      expect(fs.ignored(`/srv/app/${dir}`, undefined)).toBe(true);
    }
  });
});

describe("options", () => {
  test("true and false; defaults; extensions with or without the dot", () => {
    expect(resolveWatchOptions(undefined)).toBeUndefined();
    expect(resolveWatchOptions(false)).toBeUndefined();
    expect(resolveWatchOptions(true)).toEqual({ paths: undefined, debounceMs: 300, extensions: [".py"] });
    expect(resolveWatchOptions({ extensions: ["py", ".pyx"], debounceMs: 0, paths: [ROOT] })).toEqual({ paths: [ROOT], debounceMs: 0, extensions: [".py", ".pyx"] });
  });

  test.each([
    [{ debounceMs: -1 }, RangeError, "watch.debounceMs"],
    [{ debounceMs: 1.5 }, RangeError, "watch.debounceMs"],
    [{ paths: [] }, TypeError, "watch.paths must be a non-empty array"],
    [{ paths: ["/nonexistent/procgrpc-src"] }, RangeError, "watch.paths: /nonexistent/procgrpc-src does not exist"],
    [{ extensions: ["."] }, TypeError, "watch.extensions"],
    ["yes", TypeError, "watch must be true, false or"],
  ])("%j is refused", (watch, type, message) => {
    expect(() => resolveWatchOptions(watch as never)).toThrow(type);
    expect(() => resolveWatchOptions(watch as never)).toThrow(message);
  });

  test("the default path of a module is its source file's directory, found by the worker's own Python and environment", async () => {
    const dir = mkdtempSync(join(tmpdir(), "procgrpc-watch-mod-"));
    try {
      mkdirSync(join(dir, "shop"));
      writeFileSync(join(dir, "shop", "__init__.py"), "");
      writeFileSync(join(dir, "shop", "worker.py"), "");
      expect(await defaultWatchPath({ python: PYTHON, entry: { module: "shop.worker" }, cwd: dir, env: {} })).toBe(join(dir, "shop"));
      expect(await defaultWatchPath({ python: PYTHON, entry: { module: "shop.worker" }, cwd: undefined, env: { PYTHONPATH: dir } })).toBe(join(dir, "shop"));
      await expect(defaultWatchPath({ python: PYTHON, entry: { module: "no_such_module_xyz" }, cwd: dir, env: {} })).rejects.toThrow("no_such_module_xyz");
      expect(await defaultWatchPath({ python: PYTHON, entry: { script: "w/worker.py" }, cwd: dir, env: {} })).toBe(join(dir, "w"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("the real file watch: a .py change anywhere below reloads; other files, node_modules and .venv do not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "procgrpc-watch-"));
  try {
    for (const sub of ["pkg", "node_modules/dep", ".venv/lib"]) mkdirSync(join(dir, sub), { recursive: true });
    const logger = memoryLogger();
    const target: ReloadTarget = { workers: () => ["w0"], recycle: () => Promise.resolve() };
    const watcher = new ReloadWatcher({ paths: [dir], debounceMs: 20, extensions: [".py"] }, ENTRY, logger, target);
    await watcher.start();
    const reloaded = (): string[] => logger.entries.filter((e) => e.msg?.startsWith("files changed")).flatMap((e) => e.fields.files as string[]);
    writeFileSync(join(dir, "notes.txt"), "x");
    writeFileSync(join(dir, "node_modules", "dep", "x.py"), "x");
    writeFileSync(join(dir, ".venv", "lib", "y.py"), "x");
    writeFileSync(join(dir, "pkg", "servicer.py"), "x = 1\n");
    expect(await eventually(() => reloaded().length > 0, 20_000)).toBe(true);
    await watcher.settled();
    expect(reloaded()).toEqual([join(dir, "pkg", "servicer.py")]);
    await watcher.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
