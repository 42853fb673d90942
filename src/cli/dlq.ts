import { parseArgs } from "node:util";
import { WorkerPool } from "../pool/worker-pool";
import { jsonLogger } from "../core/logger";
import { JsonlDeadLetterStore } from "../resilience/jsonl-dead-letter-store";
import { replayDeadLetters } from "../resilience/replay";
import { POOL_FLAGS, POOL_FLAGS_USAGE, poolOptionsFromFlags } from "./pool-flags";
import { intFlag, usageError } from "./usage-error";

/** Usage of `procgrpc dlq`. */
export const DLQ_USAGE = `Usage:
  procgrpc dlq list    --store <file> [--json]
  procgrpc dlq show    <id> --store <file>
  procgrpc dlq replay  --store <file> (--script <file> | --module <name>) [pool flags] [--id <id>]... [--concurrency <n>] [--timeout-ms <n>] [--retry-attempts <n>] [--json]
  procgrpc dlq purge   --store <file> [--id <id>]...

Dead letters are calls that failed for good in pool.batch(..., { deadLetters }), kept in a
JSON-lines store. replay re-sends each one's original encoded request through a pool of workers
and removes it once the call succeeds; a failed replay stays, with the new failure recorded.
Killing replay midway loses nothing (a letter sent but not yet removed is sent again next time).

  --store <file>          The dead-letter store (JsonlDeadLetterStore)
  --id <id>               Only this letter (repeatable)
  --concurrency <n>       Replays in flight (default 4)
  --timeout-ms <n>        Deadline of each replayed call (default: the pool's 30000)
  --retry-attempts <n>    Attempts per letter with the default backoff (default 1: no retry)
  --json                  Machine-readable output
${POOL_FLAGS_USAGE}
`;

/** `procgrpc dlq list|show|replay|purge`; resolves with the exit code. */
export async function dlqCommand(args: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        store: { type: "string" },
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
  if (!values.store) throw usageError("--store <file> is required", DLQ_USAGE);
  const store = new JsonlDeadLetterStore(values.store);
  switch (action) {
    case "list": {
      const letters = await store.list();
      if (values.json) {
        out(`${JSON.stringify(letters.map(({ request: _bytes, requestJson: _json, ...summary }) => summary))}\n`);
      } else if (letters.length === 0) {
        out(`no dead letters in ${values.store}\n`);
      } else {
        for (const l of letters) out(`${l.id}  ${l.method}  ${l.codeName}  attempts=${l.attempts}  replays=${l.replays}  last=${l.lastFailureAt}  ${l.details}\n`);
        out(`${letters.length} dead letter(s)\n`);
      }
      if (store.skippedLines > 0) err(`warning: skipped ${store.skippedLines} torn line(s) in ${values.store}\n`);
      return 0;
    }
    case "show": {
      const id = rest[0] ?? values.id?.[0];
      if (!id) throw usageError("show needs the letter's id: procgrpc dlq show <id> --store <file>", DLQ_USAGE);
      const letter = await store.get(id);
      if (!letter) {
        err(`procgrpc dlq show: no dead letter with id ${id} in ${values.store}\n`);
        return 1;
      }
      out(`${JSON.stringify(letter, null, 2)}\n`);
      return 0;
    }
    case "purge": {
      if (values.id?.length) {
        let removed = 0;
        for (const id of values.id) if (await store.remove(id)) removed += 1;
        await store.compact();
        out(values.json ? `${JSON.stringify({ removed })}\n` : `removed ${removed} dead letter(s)\n`);
      } else {
        const removed = await store.purge();
        out(values.json ? `${JSON.stringify({ removed })}\n` : `removed ${removed} dead letter(s)\n`);
      }
      return 0;
    }
    case "replay":
      return replay(values, store, out, err);
    default:
      throw usageError(`unknown dlq action '${action}'`, DLQ_USAGE);
  }
}

async function replay(
  values: Record<string, string | boolean | undefined | (string | boolean)[]>,
  store: JsonlDeadLetterStore,
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
        if (!values.json) out(`${p.ok ? "replayed" : "failed  "} ${p.id}${p.error ? `  ${p.error.message}` : ""}  (${p.done}/${p.total})\n`);
      },
    });
    const left = (await store.list()).length;
    if (values.json) {
      out(`${JSON.stringify({ replayed: result.succeeded.length, failed: result.failed.map((f) => ({ id: f.id, code: f.error.code(), details: f.error.details() })), remaining: left })}\n`);
    } else {
      out(`${result.succeeded.length} replayed and removed, ${result.failed.length} failed; ${left} left in the store\n`);
    }
    return result.failed.length > 0 ? 1 : 0;
  } finally {
    await pool.shutdown();
  }
}
