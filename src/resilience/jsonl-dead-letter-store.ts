import { open, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { settleOnce, withFailure, type ClaimingDeadLetterStore, type DeadLetter, type DeadLetterClaim, type DeadLetterFailure } from "./dead-letter-store";
import { PRIVATE_FILE_MODE, makeDirs, syncDir } from "./private-files";
import { ProcessLock } from "./process-lock";

/** One line of the log. */
type Op = { op: "add"; letter: DeadLetter } | { op: "remove"; id: string } | { op: "fail"; id: string; failure: DeadLetterFailure };

/**
 * A durable dead-letter store in one append-only JSON-lines file: every change (`add`, `remove`,
 * `fail`) is one line, appended and fsynced before its promise resolves. The store keeps the
 * letters in memory and reads only what was appended since its last read (the whole file again
 * only when another process rewrote it), so each operation costs the same however long the log
 * is. A line torn by a crash is skipped (and a newline written before the next append, so it never
 * swallows a later line). `compact()` and `purge()` rewrite the file atomically (write a
 * temporary file, fsync, rename over, fsync the directory). The file is created 0600 (an older,
 * wider file is narrowed at its next write); a missing parent directory is created 0700.
 *
 * Replays claim the whole file: a replay holds a lock (`<file>.replay-lock/`) while it has
 * letters in flight, so two replays of one file never send a letter twice, and a SIGKILLed
 * replayer's lock is taken over at once. One process should write a given file at a time: a
 * compaction in one process can drop a line another process appended meanwhile.
 *
 * @deprecated Use `DirectoryDeadLetterStore`: any number of processes may write, replay and purge
 * it at once, claims are per letter, and its directory is 0700. Existing files stay readable and
 * replayable with this class and with `procgrpc dlq`; `procgrpc dlq migrate` moves their letters.
 */
export class JsonlDeadLetterStore implements ClaimingDeadLetterStore {
  private chain: Promise<unknown> = Promise.resolve();
  /** Lines that could not be parsed since the file was last read whole (torn by a crash). */
  skippedLines = 0;
  private letters = new Map<string, DeadLetter>();
  /** Where the last read stopped (after the last complete line), and which file that was. */
  private offset = 0;
  private inode = -1;
  private readonly lock: ProcessLock;
  private readonly claimed = new Set<string>();
  private lockState: Promise<boolean> | undefined;
  private lockRefused = false;

  constructor(readonly path: string) {
    if (!path) throw new TypeError("JsonlDeadLetterStore: a file path is required");
    this.lock = new ProcessLock(`${path}.replay-lock`);
  }

  add(letter: DeadLetter): Promise<void> {
    return this.serial(() => this.append([{ op: "add", letter }]));
  }

  /** Adds many letters with one fsync. */
  addAll(letters: readonly DeadLetter[]): Promise<void> {
    return this.serial(() => this.append(letters.map((letter) => ({ op: "add" as const, letter }))));
  }

  list(): Promise<DeadLetter[]> {
    return this.serial(async () => {
      await this.refresh();
      return [...this.letters.values()];
    });
  }

  get(id: string): Promise<DeadLetter | undefined> {
    return this.serial(async () => {
      await this.refresh();
      return this.letters.get(id);
    });
  }

  remove(id: string): Promise<boolean> {
    return this.serial(async () => {
      await this.refresh();
      if (!this.letters.has(id)) return false;
      await this.append([{ op: "remove", id }]);
      return true;
    });
  }

  recordFailure(id: string, failure: DeadLetterFailure): Promise<void> {
    return this.serial(() => this.append([{ op: "fail", id, failure }]));
  }

  purge(): Promise<number> {
    return this.serial(async () => {
      await this.refresh();
      const n = this.letters.size;
      await this.rewrite([]);
      return n;
    });
  }

  compact(): Promise<void> {
    return this.serial(async () => {
      await this.refresh();
      await this.rewrite([...this.letters.values()]);
    });
  }

  async claimable(): Promise<string[]> {
    this.lockRefused = false;
    const letters = await this.list();
    return letters.map((l) => l.id).filter((id) => !this.claimed.has(id));
  }

  async claim(id: string): Promise<DeadLetterClaim | undefined> {
    if (this.claimed.has(id) || this.lockRefused) return undefined;
    this.claimed.add(id); // reserved first, so that the lock is not released under this claim
    let held: boolean;
    try {
      held = await this.holdLock();
    } catch (err) {
      await this.unclaim(id);
      throw err;
    }
    if (!held) {
      // Another replayer holds the file: give up until the next claimable() instead of
      // waiting for the lock once per letter.
      this.lockRefused = true;
      await this.unclaim(id);
      return undefined;
    }
    const letter = await this.get(id);
    if (!letter) {
      await this.unclaim(id);
      return undefined;
    }
    const once = settleOnce(id);
    return {
      letter,
      complete: async () => {
        once();
        try {
          await this.remove(id);
        } finally {
          await this.unclaim(id);
        }
      },
      release: async (failure) => {
        once();
        try {
          if (failure) await this.recordFailure(id, failure);
        } finally {
          await this.unclaim(id);
        }
      },
    };
  }

  /** Takes the replay lock for the first claim in flight; false when another live replayer has it. */
  private holdLock(): Promise<boolean> {
    this.lockState ??= this.lock.acquire().then(
      (holder) => {
        if (holder) this.lockState = undefined;
        return !holder;
      },
      (err: unknown) => {
        this.lockState = undefined;
        throw err;
      },
    );
    return this.lockState;
  }

  private async unclaim(id: string): Promise<void> {
    this.claimed.delete(id);
    if (this.claimed.size === 0 && this.lockState) {
      this.lockState = undefined;
      await this.lock.release();
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Brings `letters` up to date with the file: its new lines, or all of it if it was replaced. */
  private async refresh(): Promise<void> {
    let file;
    try {
      file = await open(this.path, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      this.reset(-1);
      return;
    }
    try {
      const st = await file.stat();
      if (st.ino !== this.inode || st.size < this.offset) this.reset(st.ino);
      if (st.size === this.offset) return;
      const tail = Buffer.alloc(st.size - this.offset);
      const { bytesRead } = await file.read(tail, 0, tail.length, this.offset);
      const end = tail.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (end < 0) return; // only a line still being written (or torn at the very end)
      for (const line of tail.subarray(0, end).toString("utf8").split("\n")) this.apply(line);
      this.offset += end + 1;
    } finally {
      await file.close();
    }
  }

  private reset(inode: number): void {
    this.letters = new Map();
    this.offset = 0;
    this.inode = inode;
    this.skippedLines = 0;
  }

  private apply(line: string): void {
    if (!line.trim()) return;
    let op: Op;
    try {
      op = JSON.parse(line) as Op;
    } catch {
      this.skippedLines += 1;
      return;
    }
    if (op.op === "add") this.letters.set(op.letter.id, op.letter);
    else if (op.op === "remove") this.letters.delete(op.id);
    else if (op.op === "fail") {
      const letter = this.letters.get(op.id);
      if (letter) this.letters.set(op.id, withFailure(letter, op.failure));
    }
  }

  private async append(ops: readonly Op[]): Promise<void> {
    if (ops.length === 0) return;
    let size = -1;
    try {
      size = (await stat(this.path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      await makeDirs(dirname(this.path));
    }
    const file = await open(this.path, "a+", PRIVATE_FILE_MODE);
    try {
      const st = await file.stat();
      if ((st.mode & 0o777) !== PRIVATE_FILE_MODE) await file.chmod(PRIVATE_FILE_MODE);
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
    if (size === -1) await syncDir(dirname(this.path));
    await this.refresh();
  }

  private async rewrite(letters: readonly DeadLetter[]): Promise<void> {
    const tmp = `${this.path}.tmp-${process.pid}`;
    const file = await open(tmp, "w", PRIVATE_FILE_MODE);
    try {
      await file.chmod(PRIVATE_FILE_MODE);
      await file.writeFile(letters.map((letter) => JSON.stringify({ op: "add", letter } satisfies Op) + "\n").join(""), "utf8");
      await file.sync();
    } catch (err) {
      await file.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await file.close();
    await rename(tmp, this.path);
    await syncDir(dirname(this.path));
    await this.refresh();
  }
}
