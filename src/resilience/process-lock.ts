import { randomBytes } from "node:crypto";
import { open, readdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { formatOwner, ownerIsDead, parseOwner, thisMachine, type ClaimOwner, type OwnerEnvironment } from "./claim-owner";
import { PRIVATE_FILE_MODE, ensurePrivateDir } from "./private-files";
import { sleep } from "./sleep";

/**
 * A lock shared by processes: a 0700 directory in which each contender creates its own file
 * `<owner>~<nonce>` and then lists the directory. It holds the lock when no other live owner's
 * file is there; otherwise it removes its file and backs off. Because each contender creates
 * before it lists, two contenders can never both see themselves alone. A dead owner's file (its
 * name is unique to it) is simply deleted, so a SIGKILLed holder never blocks anyone. Attempts
 * that collide back off for a random few milliseconds and try again, a bounded number of times.
 */
export class ProcessLock {
  private held: string | undefined;
  private readonly machine: OwnerEnvironment = thisMachine();

  constructor(readonly dir: string) {}

  /** Takes the lock; resolves with undefined when taken, or with the live owner that holds it. */
  async acquire(attempts = 8): Promise<ClaimOwner | undefined> {
    if (this.held) throw new Error(`${this.dir}: lock already held by this instance`);
    await ensurePrivateDir(this.dir);
    let holder: ClaimOwner | undefined;
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const name = `${formatOwner(this.machine.self)}~${randomBytes(6).toString("hex")}`;
      const path = join(this.dir, name);
      await (await open(path, "wx", PRIVATE_FILE_MODE)).close();
      holder = undefined;
      for (const other of await readdir(this.dir)) {
        if (other === name) continue;
        const owner = parseOwner(other.split("~")[0]);
        if (!owner) continue;
        if (ownerIsDead(owner, this.machine)) await unlink(join(this.dir, other)).catch(() => undefined);
        else holder = owner;
      }
      if (!holder) {
        this.held = path;
        return undefined;
      }
      await unlink(path);
      await sleep(5 + Math.random() * 20 * (attempt + 1));
    }
    return holder;
  }

  async release(): Promise<void> {
    const path = this.held;
    this.held = undefined;
    if (path) await unlink(path).catch(() => undefined);
  }
}
