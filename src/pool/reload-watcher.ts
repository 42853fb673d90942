import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { basename, dirname, extname, resolve } from "node:path";
import type { FSWatcher } from "chokidar";
import type { Logger } from "../core/logger";
import { MAX_TIMER_MS } from "../core/deadline";
import { integerOption } from "../core/option-checks";
import { WorkerStartError } from "./worker-start-error";

/** The `watch` option of `WorkerPool`: reload workers when their Python files change (development). */
export interface WatchOptions {
  /** Files or directories to watch (recursively). Default: the directory of `script`, or of the module's source file. */
  paths?: readonly string[];
  /** Quiet time after the last change before workers are replaced. Default 300. */
  debounceMs?: number;
  /** File extensions that count as a change. Default `[".py"]`. */
  extensions?: readonly string[];
}

/** `WatchOptions` checked and filled in (`paths` undefined: the default, found at start). */
export interface ResolvedWatchOptions {
  readonly paths: readonly string[] | undefined;
  readonly debounceMs: number;
  readonly extensions: readonly string[];
}

/** Directories never watched: dependencies, caches, version control (and every dot-directory). */
const IGNORED_DIRS = new Set(["node_modules", "__pycache__", "site-packages", "venv"]);

/** Validates the `watch` option; throws a TypeError or RangeError naming the problem. */
export function resolveWatchOptions(watch: boolean | WatchOptions | undefined): ResolvedWatchOptions | undefined {
  if (watch === undefined || watch === false) return undefined;
  const given: WatchOptions = watch === true ? {} : watch;
  if (typeof given !== "object" || given === null) throw new TypeError(`WorkerPool: watch must be true, false or { paths?, debounceMs?, extensions? }, got ${JSON.stringify(watch)}`);
  let paths: string[] | undefined;
  if (given.paths !== undefined) {
    if (!Array.isArray(given.paths) || given.paths.length === 0 || given.paths.some((p) => typeof p !== "string" || p === "")) {
      throw new TypeError("WorkerPool: watch.paths must be a non-empty array of paths");
    }
    paths = given.paths.map((p) => resolve(p));
    const missing = paths.filter((p) => !existsSync(p));
    if (missing.length) throw new RangeError(`WorkerPool: watch.paths: ${missing.join(", ")} does not exist`);
  }
  let extensions = [".py"];
  if (given.extensions !== undefined) {
    if (!Array.isArray(given.extensions) || given.extensions.length === 0 || given.extensions.some((e) => typeof e !== "string" || e.replace(/^\./, "") === "")) {
      throw new TypeError('WorkerPool: watch.extensions must be a non-empty array of extensions such as ".py"');
    }
    extensions = given.extensions.map((e) => (e.startsWith(".") ? e : `.${e}`));
  }
  const debounceMs = integerOption("WorkerPool", "watch.debounceMs", given.debounceMs, 300, { min: 0, max: MAX_TIMER_MS });
  return { paths, debounceMs, extensions };
}

/** How the pool lets the watcher replace its workers. */
export interface ReloadTarget {
  /** Ids of the workers to replace, in order. */
  workers(): readonly string[];
  /** Replaces one worker gracefully (new one SERVING first); rejects when that cannot be done. */
  recycle(workerId: string): Promise<void>;
}

/** What the pool knows of its workers' entry point, to find the default paths. */
export interface WorkerEntry {
  readonly python: string;
  readonly entry: { script: string } | { module: string };
  readonly cwd: string | undefined;
  readonly env: Readonly<Record<string, string>>;
}

/** A running file watch: calls `onChange(path)` for each changed file that is not ignored. */
export interface FileWatch {
  /** Resolves when the initial scan is done and changes are being reported. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** Starts watching `paths`; the default is chokidar. */
export type FileWatchFactory = (paths: readonly string[], isIgnored: (path: string, isFile: boolean | undefined) => boolean, onChange: (path: string) => void, onError: (err: Error) => void) => FileWatch;

/**
 * chokidar, not `fs.watch({ recursive: true })`: on Linux Node's recursive watch walks the
 * whole tree synchronously and watches every file in it, node_modules and virtualenvs included
 * (about 0.9 s of blocked event loop on this repository's root), with no way to skip directories.
 * chokidar watches directories one by one and never enters ignored ones.
 */
const chokidarFactory: FileWatchFactory = (paths, isIgnored, onChange, onError) => {
  let watcher: FSWatcher | undefined;
  let closed = false;
  // Loaded on first use: importing chokidar costs about 12 ms that pools without `watch` need not pay.
  const ready = import("chokidar").then(({ watch }) => {
    if (closed) return undefined;
    const w = watch([...paths], {
      ignoreInitial: true,
      ignored: (path, stats) => isIgnored(path, stats ? stats.isFile() : undefined),
    });
    watcher = w;
    for (const event of ["add", "change", "unlink"] as const) w.on(event, (path: string) => onChange(path));
    w.on("error", (err: unknown) => onError(err instanceof Error ? err : new Error(String(err))));
    return new Promise<void>((resolveReady) => w.once("ready", () => resolveReady()));
  });
  return {
    ready,
    close: async () => {
      closed = true;
      await ready.catch(() => undefined);
      await watcher?.close();
    },
  };
};

/**
 * Watch mode: when a watched file changes, replaces the pool's workers one at a time through
 * `target.recycle` (each new worker SERVING before the old one drains), after `debounceMs` of
 * quiet. Reloads never overlap: changes during a reload start another one after it. A
 * replacement that fails to start (say, a syntax error) stops the reload — the old workers keep
 * serving — and is logged with its stderr tail; the next change tries again.
 */
export class ReloadWatcher {
  private watch: FileWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private changed = new Set<string>();
  private reloading: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private watchedPaths: readonly string[] = [];

  constructor(
    private readonly options: ResolvedWatchOptions,
    private readonly worker: WorkerEntry,
    private readonly logger: Logger,
    private readonly target: ReloadTarget,
    private readonly factory: FileWatchFactory = chokidarFactory,
  ) {}

  /** The paths being watched (after `start()`). */
  get paths(): readonly string[] {
    return this.watchedPaths;
  }

  /** Finds the paths and starts watching; resolves when changes are being reported. Failures are logged, never thrown. */
  async start(): Promise<void> {
    try {
      this.watchedPaths = this.options.paths ?? [await defaultWatchPath(this.worker)];
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, "watch: cannot find the worker's source directory; not watching (give watch.paths)");
      return;
    }
    if (this.stopped) return;
    const extensions = this.options.extensions;
    this.watch = this.factory(
      this.watchedPaths,
      (path, isFile) => {
        if (this.watchedPaths.includes(path)) return false;
        const name = basename(path);
        if (isFile === false || isFile === undefined) {
          if (name.startsWith(".") || IGNORED_DIRS.has(name)) return true;
        }
        return isFile === true && !extensions.includes(extname(path));
      },
      (path) => this.onChange(path),
      (err) => this.logger.warn({ err: err.message }, "watch: file watcher error"),
    );
    try {
      await this.watch.ready;
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, "watch: the file watcher could not start; not watching");
      return;
    }
    this.logger.info({ paths: this.watchedPaths, extensions, debounceMs: this.options.debounceMs }, "watching for changes; workers reload when files change");
  }

  /**
   * Stops watching. A reload under way replaces no further workers; the replacement it is
   * starting is the pool's to stop (shutdown stops every process of a worker).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.watch?.close();
  }

  /** Resolves when no reload is under way (tests, and callers that want to wait for one). */
  async settled(): Promise<void> {
    while (this.reloading) await this.reloading;
  }

  /** A watched file changed (exposed to the factory's callback). */
  private onChange(path: string): void {
    if (this.stopped) return;
    this.changed.add(path);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), this.options.debounceMs);
  }

  private fire(): void {
    if (this.stopped) return;
    if (this.reloading) {
      this.again = true;
      return;
    }
    this.reloading = this.reloadAll().finally(() => {
      this.reloading = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        this.fire();
      }
    });
  }

  private async reloadAll(): Promise<void> {
    const files = [...this.changed];
    this.changed.clear();
    const workers = this.target.workers();
    this.logger.info({ files, workers }, "files changed; reloading workers one at a time");
    for (const workerId of workers) {
      if (this.stopped) return;
      try {
        await this.target.recycle(workerId);
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof WorkerStartError) {
          this.logger.error({ workerId, files, err: err.message, stderrTail: err.stderrTail }, "reload failed: the new worker did not start; the old workers keep serving until the next change");
          return;
        }
        // Not running right now (restarting, starting): it starts from the new files anyway.
        this.logger.info({ workerId, err: (err as Error).message }, "reload: skipping a worker that is not running");
      }
    }
    this.logger.info({ files, workers }, "reload done");
  }
}

/** The directory of the worker's script, or of its module's source file (asked of the worker's Python). */
export async function defaultWatchPath(worker: WorkerEntry): Promise<string> {
  const cwd = worker.cwd ?? process.cwd();
  if ("script" in worker.entry) return dirname(resolve(cwd, worker.entry.script));
  const module = worker.entry.module;
  const code = "import importlib.util, sys\nspec = importlib.util.find_spec(sys.argv[1])\nprint(spec.origin if spec and spec.origin else '')";
  const origin = await new Promise<string>((resolveOrigin, reject) => {
    execFile(worker.python, ["-c", code, module], { cwd, env: { ...process.env, ...worker.env }, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${worker.python} could not locate module ${module}: ${(stderr || err.message).trim()}`));
      else resolveOrigin(stdout.trim());
    });
  });
  if (!origin || !existsSync(origin)) throw new Error(`module ${module} has no source file (${origin || "not found"})`);
  return dirname(origin);
}
