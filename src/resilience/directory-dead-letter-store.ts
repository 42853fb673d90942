import { readFile, readdir, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { formatOwner, ownerIsDead, parseOwner, thisMachine, type ClaimOwner, type OwnerEnvironment } from "./claim-owner";
import { settleOnce, withFailure, type ClaimingDeadLetterStore, type DeadLetter, type DeadLetterClaim, type DeadLetterFailure } from "./dead-letter-store";
import { DirSyncer, ensurePrivateDir, writePrivateFileAtomic } from "./private-files";

/** A claim found in a store: which letter, which process holds it, and whether that process is gone. */
export interface ClaimInfo {
  id: string;
  owner: ClaimOwner;
  /** The owner process is certainly dead: the next replay takes the letter over. */
  ownerDead: boolean;
}

/** Letter ids become file names: UUIDs and other plain names only. */
const ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;
/** Files a crashed writer left in tmp/ are removed once they are this old. */
const STALE_TMP_MS = 60 * 60 * 1000;
/** Files read at once by `list()`. */
const READ_PARALLELISM = 64;

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}

/** `<id>~<owner>.json` → its parts. */
function parseClaimName(name: string): { id: string; owner: ClaimOwner } | undefined {
  if (!name.endsWith(".json")) return undefined;
  const tilde = name.indexOf("~");
  if (tilde <= 0) return undefined;
  const owner = parseOwner(name.slice(tilde + 1, -".json".length));
  return owner ? { id: name.slice(0, tilde), owner } : undefined;
}

/**
 * The default durable dead-letter store: a directory with one JSON file per letter, as a mail
 * spool (Maildir) keeps one file per message. Every letter is written to `tmp/`, fsynced and
 * renamed into `ready/`, so it appears whole or not at all; any number of processes may add
 * letters, replay and purge at the same time.
 *
 * A replayer claims a letter by renaming `ready/<id>.json` to `claimed/<id>~<owner>.json`, where
 * `<owner>` names the replaying process (host, boot, pid and start time). rename(2) is atomic:
 * of two replayers claiming one letter exactly one succeeds. A success deletes the claimed file;
 * a failure records itself and renames the file back into `ready/`. A claim whose owner died
 * (SIGKILL, crash, reboot) is taken over by the next replay with one more rename of that exact
 * name, which only one replayer can win. Every operation touches one letter's files, so a
 * replay costs the same per letter whether the store holds 10 letters or 100,000.
 *
 * The directory is 0700 and every file 0600 from the first write, whatever the umask: letters
 * hold request payloads. The directory must be on a local filesystem (claims from another host
 * are never judged dead).
 */
export class DirectoryDeadLetterStore implements ClaimingDeadLetterStore {
  /** Files that could not be read as letters at the last `list()` (written by hand, damaged). */
  skippedFiles = 0;
  private readonly readyDir: string;
  private readonly claimedDir: string;
  private readonly tmpDir: string;
  private readonly readySync: DirSyncer;
  private readonly claimedSync: DirSyncer;
  private readonly machine: OwnerEnvironment;
  private readonly me: string;
  private prepared: Promise<void> | undefined;

  constructor(readonly dir: string) {
    if (!dir) throw new TypeError("DirectoryDeadLetterStore: a directory path is required");
    this.readyDir = join(dir, "ready");
    this.claimedDir = join(dir, "claimed");
    this.tmpDir = join(dir, "tmp");
    this.readySync = new DirSyncer(this.readyDir);
    this.claimedSync = new DirSyncer(this.claimedDir);
    this.machine = thisMachine();
    this.me = formatOwner(this.machine.self);
  }

  add(letter: DeadLetter): Promise<void> {
    return this.addAll([letter]);
  }

  /** Adds many letters with one directory fsync. */
  async addAll(letters: readonly DeadLetter[]): Promise<void> {
    for (const letter of letters) checkId(letter.id);
    await this.prepare();
    for (let i = 0; i < letters.length; i += READ_PARALLELISM) {
      await Promise.all(letters.slice(i, i + READ_PARALLELISM).map((l) => writePrivateFileAtomic(this.tmpDir, this.readyPath(l.id), `${JSON.stringify(l)}\n`)));
    }
    if (letters.length > 0) await this.readySync.sync();
  }

  /** Every letter, claimed ones included. */
  async list(): Promise<DeadLetter[]> {
    const paths = [...(await entries(this.readyDir)).filter((n) => n.endsWith(".json")).map((n) => join(this.readyDir, n))];
    for (const name of await entries(this.claimedDir)) if (parseClaimName(name)) paths.push(join(this.claimedDir, name));
    const letters = new Map<string, DeadLetter>();
    let skipped = 0;
    for (let i = 0; i < paths.length; i += READ_PARALLELISM) {
      const read = await Promise.all(paths.slice(i, i + READ_PARALLELISM).map((p) => readLetter(p)));
      for (const r of read) {
        if (r === "missing") continue; // claimed, settled or removed while we listed
        if (r === "invalid") skipped += 1;
        else if (!letters.has(r.id)) letters.set(r.id, r);
      }
    }
    this.skippedFiles = skipped;
    return [...letters.values()];
  }

  /** How many letters there are (without reading them). */
  async count(): Promise<number> {
    const ids = new Set((await entries(this.readyDir)).filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -".json".length)));
    for (const name of await entries(this.claimedDir)) {
      const claim = parseClaimName(name);
      if (claim) ids.add(claim.id);
    }
    return ids.size;
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    if (!ID.test(id)) return undefined;
    for (const path of [this.readyPath(id), ...(await this.claimPaths(id))]) {
      const r = await readLetter(path);
      if (typeof r === "object") return r;
    }
    return undefined;
  }

  /** Removes a letter, claimed or not; false when there was none with that id. */
  async remove(id: string): Promise<boolean> {
    if (!ID.test(id)) return false;
    let removed = await unlinkIfThere(this.readyPath(id));
    for (const path of await this.claimPaths(id)) removed = (await unlinkIfThere(path)) || removed;
    if (removed) await Promise.all([this.readySync.sync(), this.claimedSync.sync()]);
    return removed;
  }

  async recordFailure(id: string, failure: DeadLetterFailure): Promise<void> {
    if (!ID.test(id)) return;
    for (const path of [this.readyPath(id), ...(await this.claimPaths(id))]) {
      const r = await readLetter(path);
      if (typeof r !== "object") continue;
      await writePrivateFileAtomic(this.tmpDir, path, `${JSON.stringify(withFailure(r, failure))}\n`);
      await (path.startsWith(this.readyDir) ? this.readySync : this.claimedSync).sync();
      return;
    }
  }

  async purge(): Promise<number> {
    const ids = new Set<string>();
    for (const name of await entries(this.readyDir)) {
      if (!name.endsWith(".json")) continue;
      if (await unlinkIfThere(join(this.readyDir, name))) ids.add(name.slice(0, -".json".length));
    }
    for (const name of await entries(this.claimedDir)) {
      const claim = parseClaimName(name);
      if (claim && (await unlinkIfThere(join(this.claimedDir, name)))) ids.add(claim.id);
    }
    if (ids.size > 0) await Promise.all([this.readySync.sync(), this.claimedSync.sync()]);
    return ids.size;
  }

  async claimable(): Promise<string[]> {
    const ids = (await entries(this.readyDir)).filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -".json".length));
    const seen = new Set(ids);
    for (const claim of await this.claims()) {
      if (claim.ownerDead && !seen.has(claim.id)) {
        seen.add(claim.id);
        ids.push(claim.id);
      }
    }
    return ids;
  }

  /** Every claim in the store, with its owner and whether the owner is gone. */
  async claims(): Promise<ClaimInfo[]> {
    const verdicts = new Map<string, boolean>();
    const out: ClaimInfo[] = [];
    for (const name of await entries(this.claimedDir)) {
      const claim = parseClaimName(name);
      if (!claim) continue;
      const key = formatOwner(claim.owner);
      let dead = verdicts.get(key);
      if (dead === undefined) verdicts.set(key, (dead = ownerIsDead(claim.owner, this.machine)));
      out.push({ ...claim, ownerDead: dead });
    }
    return out;
  }

  async claim(id: string): Promise<DeadLetterClaim | undefined> {
    if (!ID.test(id)) return undefined;
    await this.prepare();
    const mine = join(this.claimedDir, `${id}~${this.me}.json`);
    if (!(await renameIfThere(this.readyPath(id), mine))) {
      let taken = false;
      for (const path of await this.claimPaths(id)) {
        const claim = parseClaimName(path.slice(this.claimedDir.length + 1));
        if (!claim || !ownerIsDead(claim.owner, this.machine)) continue;
        // The dead owner's exact name: of several replayers taking it over, one rename wins.
        if (await renameIfThere(path, mine)) {
          taken = true;
          break;
        }
      }
      if (!taken) return undefined;
    }
    const letter = await readLetter(mine);
    if (typeof letter !== "object") {
      if (letter === "invalid") await renameIfThere(mine, this.readyPath(id));
      return undefined;
    }
    const once = settleOnce(id);
    return {
      letter,
      complete: async () => {
        once();
        await unlinkIfThere(mine);
        await this.claimedSync.sync();
      },
      release: async (failure) => {
        once();
        if (failure) await writePrivateFileAtomic(this.tmpDir, mine, `${JSON.stringify(withFailure(letter, failure))}\n`);
        await renameIfThere(mine, this.readyPath(id));
        await Promise.all([this.readySync.sync(), this.claimedSync.sync()]);
      },
    };
  }

  private readyPath(id: string): string {
    return join(this.readyDir, `${id}.json`);
  }

  private async claimPaths(id: string): Promise<string[]> {
    const prefix = `${id}~`;
    return (await entries(this.claimedDir)).filter((n) => n.startsWith(prefix) && parseClaimName(n)?.id === id).map((n) => join(this.claimedDir, n));
  }

  /** Creates the directories (0700) once, and clears what crashed writers left in tmp/. */
  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      await ensurePrivateDir(this.dir);
      await Promise.all([ensurePrivateDir(this.readyDir), ensurePrivateDir(this.claimedDir), ensurePrivateDir(this.tmpDir)]);
      const now = Date.now();
      for (const name of await entries(this.tmpDir)) {
        const path = join(this.tmpDir, name);
        const st = await stat(path).catch(() => undefined);
        if (st && now - st.mtimeMs > STALE_TMP_MS) await unlinkIfThere(path);
      }
    })().catch((err: unknown) => {
      this.prepared = undefined;
      throw err;
    });
    return this.prepared;
  }
}

function checkId(id: string): void {
  if (typeof id !== "string" || !ID.test(id)) throw new TypeError(`DirectoryDeadLetterStore: a letter id must be 1-200 characters of [A-Za-z0-9._-], not starting with '.': ${JSON.stringify(id)}`);
}

async function readLetter(path: string): Promise<DeadLetter | "missing" | "invalid"> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (isMissing(err)) return "missing";
    throw err;
  }
  try {
    const letter = JSON.parse(text) as DeadLetter;
    return letter && typeof letter === "object" && typeof letter.id === "string" && typeof letter.method === "string" ? letter : "invalid";
  } catch {
    return "invalid";
  }
}

async function unlinkIfThere(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

async function renameIfThere(from: string, to: string): Promise<boolean> {
  try {
    await rename(from, to);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}
