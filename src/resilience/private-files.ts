import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";

/** Dead letters hold request payloads: their files are 0600, their directories 0700. */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/**
 * Creates `dir` (and missing parents) and makes it 0700 whatever the umask. An existing directory
 * that this process's user owns is tightened to 0700 too (it is the store's own directory).
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await makeDirs(dir);
  const st = await stat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  const mine = typeof process.getuid !== "function" || st.uid === process.getuid();
  if (mine && (st.mode & 0o777) !== PRIVATE_DIR_MODE) await chmod(dir, PRIVATE_DIR_MODE);
}

/**
 * Creates `dir` and its missing parents, each 0700 whatever the umask (mkdir's mode is masked by
 * it; chmod is not). Directories that already existed are left as they are.
 */
export async function makeDirs(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (first === undefined) return;
  const created = [resolve(dir)];
  while (created[0] !== resolve(first) && dirname(created[0]) !== created[0]) created.unshift(dirname(created[0]));
  for (const d of created) await chmod(d, PRIVATE_DIR_MODE);
}

/**
 * Writes `data` to a new 0600 file in `tmpDir` (mode set with fchmod, so the umask cannot widen or
 * narrow it), fsyncs it and renames it to `target`, which then appears whole or not at all.
 * The caller syncs the target's directory when the rename must survive power loss.
 */
export async function writePrivateFileAtomic(tmpDir: string, target: string, data: string): Promise<void> {
  const tmp = join(tmpDir, `${randomBytes(8).toString("hex")}.tmp`);
  const file = await open(tmp, "wx", PRIVATE_FILE_MODE);
  try {
    await file.chmod(PRIVATE_FILE_MODE);
    await file.writeFile(data, "utf8");
    await file.sync();
  } catch (err) {
    await file.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await file.close();
  try {
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Makes creations, renames and removals in `dir` durable (fsync of the directory). */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Coalesces directory fsyncs: callers that ask while one is running share the next one, so N
 * concurrent removals cost about two fsyncs instead of N, and each caller still resolves only
 * after a sync that started after its own change.
 */
export class DirSyncer {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (!this.running) {
      this.running = syncDir(this.dir).finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    if (!this.queued) {
      this.queued = this.running
        .catch(() => undefined)
        .then(() => {
          this.queued = undefined;
          return this.sync();
        });
    }
    return this.queued;
  }
}
