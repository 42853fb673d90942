import { statSync } from "node:fs";
import { parseArgs } from "node:util";
import { WorkerPool } from "../pool/worker-pool";
import { jsonLogger } from "../core/logger";
import type { DeadLetter } from "../resilience/dead-letter-store";
import { DirectoryDeadLetterStore, type ClaimInfo } from "../resilience/directory-dead-letter-store";
import { JsonlDeadLetterStore } from "../resilience/jsonl-dead-letter-store";
import { ProcessLock } from "../resilience/process-lock";
import { replayDeadLetters } from "../resilience/replay";
import { POOL_FLAGS, POOL_FLAGS_USAGE, poolOptionsFromFlags } from "./pool-flags";
import { intFlag, usageError } from "./usage-error";

/** Usage of `procgrpc dlq`. */
export const DLQ_USAGE = `Usage:
  procgrpc dlq list    --store <path> [--json]
  procgrpc dlq show    <id> --store <path>
  procgrpc dlq replay  --store <path> (--script <file> | --module <name>) [pool flags] [--id <id>]... [--concurrency <n>] [--timeout-ms <n>] [--retry-attempts <n>] [--json]
  procgrpc dlq purge   --store <path> [--id <id>]...
  procgrpc dlq migrate --from <file.jsonl> --store <dir>

Dead letters are calls that failed for good in pool.batch(..., { deadLetters }). replay re-sends
each one's original encoded request through a pool of workers and removes it once the call
succeeds; a failed replay stays, with the new failure recorded. Each letter is claimed before it
is sent, so replays running at the same time (and the application writing letters) never send
one twice. Killing replay midway loses nothing: the next replay takes over the letters the dead
one had in flight (those may be sent a second time: at least once), and sends the rest once.

--store is a DirectoryDeadLetterStore directory, or a file of the deprecated JSON-lines store
(JsonlDeadLetterStore; a path ending in .jsonl that does not exist yet counts as one). Replays of
a JSON-lines file take turns (one holds the file while it has letters in flight). migrate moves
a JSON-lines file's letters into a directory store, keeping their ids.

  --store <path>          The dead-letter store
  --from <file>           (migrate) the JSON-lines file to move letters from
  --id <id>               Only this letter (repeatable)
  --concurrency <n>       Replays in flight (default 4)
  --timeout-ms <n>        Deadline of each replayed call (default: the pool's 30000)
  --retry-attempts <n>    Attempts per letter with the default backoff (default 1: no retry)
  --json                  Machine-readable output
${POOL_FLAGS_USAGE}
`;

type Store = DirectoryDeadLetterStore | JsonlDeadLetterStore;

/**
 * The store at `path`: an existing regular file is the JSON-lines store, an existing directory
 * the directory store; a path that does not exist is a JSON-lines store when it ends in .jsonl.
 */
export function openStore(path: string): Store {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    return path.endsWith(".jsonl") ? new JsonlDeadLetterStore(path) : new DirectoryDeadLetterStore(path);
  }
  if (st.isFile()) return new JsonlDeadLetterStore(path);
  if (st.isDirectory()) return new DirectoryDeadLetterStore(path);
  throw new Error(`${path} is neither a dead-letter directory nor a JSON-lines file`);
}

/** `procgrpc dlq list|show|replay|purge|migrate`; resolves with the exit code. */
export async function dlqCommand(args: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        store: { type: "string" },
        from: { type: "string" },
        id: { type: "string", multiple: true },
        concurrency: { type: "string" },
        "timeout-ms": { type: "string" },
        "retry-attempts": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        ...POOL_FLAGS,
      },
      strict: true,
    });
  } catch (e) {
    throw usageError((e as Error).message, DLQ_USAGE);
  }
  const { values, positionals } = parsed;
  const [action, ...rest] = positionals;
  if (values.help || !action) {
    out(DLQ_USAGE);
    return values.help ? 0 : 2;
  }
  if (!values.store) throw usageError("--store <path> is required", DLQ_USAGE);
  if (action === "migrate") return migrate(values.from, values.store, values.json === true, out);
  const store = openStore(values.store);
  switch (action) {
    case "list": {
      const letters = await store.list();
      const claims = new Map((store instanceof DirectoryDeadLetterStore ? await store.claims() : []).map((c) => [c.id, c]));
      if (values.json) {
        out(`${JSON.stringify(letters.map((l) => ({ ...summary(l), ...claimView(claims.get(l.id)) })))}\n`);
      } else if (letters.length === 0) {
        out(`no dead letters in ${values.store}\n`);
      } else {
        for (const l of letters) {
          const claim = claims.get(l.id);
          const claimed = claim ? `  claimed by pid ${claim.owner.pid}${claim.ownerDead ? " (dead: the next replay takes it)" : ""}` : "";
          out(`${l.id}  ${l.method}  ${l.codeName}  attempts=${l.attempts}  replays=${l.replays}  last=${l.lastFailureAt}  ${l.details}${claimed}\n`);
        }
        out(`${letters.length} dead letter(s)\n`);
      }
      warnSkipped(store, values.store, err);
      return 0;
    }
    case "show": {
      const id = rest[0] ?? values.id?.[0];
      if (!id) throw usageError("show needs the letter's id: procgrpc dlq show <id> --store <path>", DLQ_USAGE);
      const letter = await store.get(id);
      if (!letter) {
        err(`procgrpc dlq show: no dead letter with id ${id} in ${values.store}\n`);
        return 1;
      }
      out(`${JSON.stringify(letter, null, 2)}\n`);
      return 0;
    }
    case "purge": {
      let removed = 0;
      if (values.id?.length) {
        for (const id of values.id) if (await store.remove(id)) removed += 1;
        if (store instanceof JsonlDeadLetterStore) await store.compact();
      } else {
        removed = await store.purge();
      }
      out(values.json ? `${JSON.stringify({ removed })}\n` : `removed ${removed} dead letter(s)\n`);
      return 0;
    }
    case "replay":
      return replay(values, store, out, err);
    default:
      throw usageError(`unknown dlq action '${action}'`, DLQ_USAGE);
  }
}

function summary(letter: DeadLetter): Omit<DeadLetter, "request" | "requestJson"> {
  const { request: _bytes, requestJson: _json, ...rest } = letter;
  return rest;
}

function claimView(claim: ClaimInfo | undefined): { claimedBy?: { pid: number; ownerDead: boolean } } {
  return claim ? { claimedBy: { pid: claim.owner.pid, ownerDead: claim.ownerDead } } : {};
}

function warnSkipped(store: Store, path: string, err: (s: string) => void): void {
  if (store instanceof JsonlDeadLetterStore && store.skippedLines > 0) err(`warning: skipped ${store.skippedLines} torn line(s) in ${path}\n`);
  if (store instanceof DirectoryDeadLetterStore && store.skippedFiles > 0) err(`warning: skipped ${store.skippedFiles} unreadable letter file(s) in ${path}\n`);
}

async function remaining(store: Store): Promise<number> {
  return store instanceof DirectoryDeadLetterStore ? store.count() : (await store.list()).length;
}

async function migrate(from: string | undefined, to: string, json: boolean, out: (s: string) => void): Promise<number> {
  if (!from) throw usageError("migrate needs --from <file.jsonl>", DLQ_USAGE);
  const source = openStore(from);
  const target = openStore(to);
  if (!(source instanceof JsonlDeadLetterStore)) throw usageError(`--from ${from} is not a JSON-lines store file`, DLQ_USAGE);
  if (!(target instanceof DirectoryDeadLetterStore)) throw usageError(`--store ${to} must be a directory store (a directory, or a path that does not exist)`, DLQ_USAGE);
  // No replay of the file may run while its letters move (replays of it hold this lock).
  const lock = new ProcessLock(`${from}.replay-lock`);
  const holder = await lock.acquire();
  if (holder) throw new Error(`${from} is being replayed by pid ${holder.pid}; migrate it when that replay has finished`);
  try {
    const letters = await source.list();
    // Written (and fsynced) to the directory before the file is emptied: a crash in between
    // leaves copies with the same ids, and running migrate again converges.
    await target.addAll(letters);
    await source.purge();
    out(json ? `${JSON.stringify({ moved: letters.length })}\n` : `moved ${letters.length} dead letter(s) from ${from} to ${to}\n`);
    return 0;
  } finally {
    await lock.release();
  }
}

async function replay(
  values: Record<string, string | boolean | undefined | (string | boolean)[]>,
  store: Store,
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  const poolOptions = poolOptionsFromFlags(values, DLQ_USAGE);
  const concurrency = intFlag("concurrency", values.concurrency as string | undefined, DLQ_USAGE) ?? 4;
  const timeoutMs = intFlag("timeout-ms", values["timeout-ms"] as string | undefined, DLQ_USAGE);
  const attempts = intFlag("retry-attempts", values["retry-attempts"] as string | undefined, DLQ_USAGE) ?? 1;
  const pool = new WorkerPool({ ...poolOptions, logger: jsonLogger("warn", (line) => err(line)), retry: attempts > 1 ? { maxAttempts: attempts } : false });
  await pool.start();
  try {
    const result = await replayDeadLetters(store, pool, {
      concurrency,
      ids: values.id as string[] | undefined,
      callOptions: timeoutMs ? { timeoutMs } : {},
      onProgress: (p) => {
        if (values.json) return;
        const what = p.ok ? "replayed" : p.skipped ? "skipped " : "failed  ";
        out(`${what} ${p.id}${p.error ? `  ${p.error.message}` : p.skipped ? "  (claimed by another replayer)" : ""}  (${p.done}/${p.total})\n`);
      },
    });
    const left = await remaining(store);
    if (values.json) {
      out(`${JSON.stringify({ replayed: result.succeeded.length, failed: result.failed.map((f) => ({ id: f.id, code: f.error.code(), details: f.error.details() })), skipped: result.skipped.length, remaining: left })}\n`);
    } else {
      const skipped = result.skipped.length > 0 ? `, ${result.skipped.length} skipped (claimed by another replayer)` : "";
      out(`${result.succeeded.length} replayed and removed, ${result.failed.length} failed${skipped}; ${left} left in the store\n`);
    }
    return result.failed.length > 0 ? 1 : 0;
  } finally {
    await pool.shutdown();
  }
}
