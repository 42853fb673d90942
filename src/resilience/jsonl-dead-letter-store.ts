import { closeSync, fsyncSync, openSync } from "node:fs";
import { open, readFile, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { withFailure, type DeadLetter, type DeadLetterFailure, type DeadLetterStore } from "./dead-letter-store";

/** One line of the log. */
type Op = { op: "add"; letter: DeadLetter } | { op: "remove"; id: string } | { op: "fail"; id: string; failure: DeadLetterFailure };

/**
 * A durable dead-letter store in one append-only JSON-lines file: every change (`add`, `remove`,
 * `fail`) is one line, appended and fsynced before its promise resolves; reading replays the log.
 * A line torn by a crash is skipped (and a newline written before the next append, so it never
 * swallows a later line). `compact()` and `purge()` rewrite the file atomically (write a
 * temporary file, fsync, rename over, fsync the directory). No native dependency.
 * One writing process at a time per file.
 */
export class JsonlDeadLetterStore implements DeadLetterStore {
  private chain: Promise<unknown> = Promise.resolve();
  /** Lines that could not be parsed at the last read (torn by a crash). */
  skippedLines = 0;

  constructor(readonly path: string) {
    if (!path) throw new TypeError("JsonlDeadLetterStore: a file path is required");
  }

  add(letter: DeadLetter): Promise<void> {
    return this.serial(() => this.append([{ op: "add", letter }]));
  }

  /** Adds many letters with one fsync. */
  addAll(letters: readonly DeadLetter[]): Promise<void> {
    return this.serial(() => this.append(letters.map((letter) => ({ op: "add" as const, letter }))));
  }

  list(): Promise<DeadLetter[]> {
    return this.serial(async () => [...(await this.load()).values()]);
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    return (await this.list()).find((l) => l.id === id);
  }

  remove(id: string): Promise<boolean> {
    return this.serial(async () => {
      const letters = await this.load();
      if (!letters.has(id)) return false;
      await this.append([{ op: "remove", id }]);
      return true;
    });
  }

  recordFailure(id: string, failure: DeadLetterFailure): Promise<void> {
    return this.serial(() => this.append([{ op: "fail", id, failure }]));
  }

  purge(): Promise<number> {
    return this.serial(async () => {
      const n = (await this.load()).size;
      await this.rewrite([]);
      return n;
    });
  }

  compact(): Promise<void> {
    return this.serial(async () => this.rewrite([...(await this.load()).values()]));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async load(): Promise<Map<string, DeadLetter>> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return new Map();
      throw err;
    }
    const letters = new Map<string, DeadLetter>();
    this.skippedLines = 0;
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      let op: Op;
      try {
        op = JSON.parse(line) as Op;
      } catch {
        this.skippedLines += 1;
        continue;
      }
      if (op.op === "add") letters.set(op.letter.id, op.letter);
      else if (op.op === "remove") letters.delete(op.id);
      else if (op.op === "fail") {
        const letter = letters.get(op.id);
        if (letter) letters.set(op.id, withFailure(letter, op.failure));
      }
    }
    return letters;
  }

  private async append(ops: readonly Op[]): Promise<void> {
    if (ops.length === 0) return;
    let size = -1;
    try {
      size = (await stat(this.path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const file = await open(this.path, "a+");
    try {
      let prefix = "";
      if (size > 0) {
        // A crash may have left a torn last line: start on a fresh one.
        const last = Buffer.alloc(1);
        await file.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) prefix = "\n";
      }
      await file.appendFile(prefix + ops.map((op) => JSON.stringify(op)).join("\n") + "\n", "utf8");
      await file.sync();
    } finally {
      await file.close();
    }
    if (size === -1) syncDir(dirname(this.path));
  }

  private async rewrite(letters: readonly DeadLetter[]): Promise<void> {
    const tmp = `${this.path}.tmp-${process.pid}`;
    const file = await open(tmp, "w", 0o600);
    try {
      await file.writeFile(letters.map((letter) => JSON.stringify({ op: "add", letter } satisfies Op) + "\n").join(""), "utf8");
      await file.sync();
    } catch (err) {
      await file.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await file.close();
    await rename(tmp, this.path);
    syncDir(dirname(this.path));
  }
}

/** Makes a rename or a file creation in `dir` durable. */
function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
