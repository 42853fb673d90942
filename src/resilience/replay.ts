import type { BaseCallOptions } from "../call/call-options";
import type { ResilienceCallOptions } from "./pool-resilience";
import type { UnaryMethod } from "../call/method";
import { RpcError } from "../core/rpc-error";
import { statusName } from "../core/status";
import { supportsClaims, type ClaimingDeadLetterStore, type DeadLetter, type DeadLetterFailure, type DeadLetterStore } from "./dead-letter-store";
import { rawUnaryMethod } from "../call/raw-method";

/** The options of one call a batch or a replay makes. */
type CallOptions = BaseCallOptions & ResilienceCallOptions;

/** Something that runs unary calls: a `WorkerPool`. */
export interface UnaryRunner {
  unary<Res>(method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions): Promise<Res>;
}

/** Options of `replayDeadLetters`. */
export interface ReplayOptions {
  /** Replays in flight at once. Default 4. */
  concurrency?: number;
  /** Only these letters. Default: every letter in the store. */
  ids?: readonly string[];
  /** Options for each replayed call (timeoutMs, retry, …). */
  callOptions?: CallOptions;
  /** Stops starting new replays. */
  signal?: AbortSignal;
  /** Called after each letter settles (replayed, failed, or skipped because another replayer has it). */
  onProgress?: (event: ReplayProgress) => void;
}

/** One letter settled: `ok` when replayed and removed; `skipped` when another replayer had it. */
export interface ReplayProgress {
  id: string;
  ok: boolean;
  skipped?: boolean;
  done: number;
  total: number;
  error?: RpcError;
}

/** What a replay did. */
export interface ReplayResult {
  /** Letters replayed successfully and removed from the store. */
  succeeded: string[];
  /** Letters whose replay failed; they stay in the store with the new failure recorded. */
  failed: { id: string; error: RpcError }[];
  /**
   * Letters not sent because another live replayer (another process, or another replay in this
   * one) had claimed them, or because they were removed meanwhile. Always empty for a store
   * without claims.
   */
  skipped: string[];
}

/**
 * Re-sends dead letters (their original encoded bytes) through `pool` and removes each one only
 * after its call succeeded; a failed replay is recorded on the letter.
 *
 * With a store that supports claims (`DirectoryDeadLetterStore`, `JsonlDeadLetterStore`,
 * `MemoryDeadLetterStore`), each letter is claimed just before it is sent and settled just after,
 * so concurrent replays (other processes, or this one's application writing new letters) never
 * send one letter twice, and at most `concurrency` letters are claimed at a time. A replayer
 * killed midway loses nothing: its claims are taken over by the next replay once its process is
 * gone. Those in-flight letters may have run already (the call reached the worker, the removal
 * did not happen), so they are sent again: delivery is at least once for them, and exactly once
 * for every other letter. With a store without claims, run one replay at a time.
 */
export async function replayDeadLetters(store: DeadLetterStore, pool: UnaryRunner, options: ReplayOptions = {}): Promise<ReplayResult> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`replay: concurrency must be an integer >= 1, got ${String(options.concurrency)}`);
  const result: ReplayResult = { succeeded: [], failed: [], skipped: [] };
  const callOptions = { ...options.callOptions, ...(options.signal ? { signal: options.signal } : {}) };
  const send = async (letter: DeadLetter): Promise<RpcError | undefined> => {
    try {
      await pool.unary(rawUnaryMethod(letter.method), Buffer.from(letter.request, "base64"), callOptions);
      return undefined;
    } catch (thrown) {
      return RpcError.from(thrown, letter.method);
    }
  };
  const progress = (id: string, total: number, outcome: { error?: RpcError; skipped?: boolean }): void => {
    const done = result.succeeded.length + result.failed.length + result.skipped.length;
    options.onProgress?.({ id, ok: !outcome.error && !outcome.skipped, done, total, ...outcome });
  };
  if (supportsClaims(store)) {
    await replayClaimed(store, options, result, send, progress, concurrency);
    return result;
  }
  let letters = await store.list();
  if (options.ids) {
    const missing = options.ids.filter((id) => !letters.some((l) => l.id === id));
    if (missing.length > 0) throw new Error(`replay: no dead letter with id ${missing.join(", ")} in the store`);
    const wanted = new Set(options.ids);
    letters = letters.filter((l) => wanted.has(l.id));
  }
  await runLanes(letters, concurrency, options.signal, async (letter) => {
    const error = await send(letter);
    if (error) {
      await store.recordFailure(letter.id, failureOf(error));
      result.failed.push({ id: letter.id, error });
    } else {
      await store.remove(letter.id);
      result.succeeded.push(letter.id);
    }
    progress(letter.id, letters.length, { error });
  });
  await store.compact?.();
  return result;
}

async function replayClaimed(
  store: ClaimingDeadLetterStore,
  options: ReplayOptions,
  result: ReplayResult,
  send: (letter: DeadLetter) => Promise<RpcError | undefined>,
  progress: (id: string, total: number, outcome: { error?: RpcError; skipped?: boolean }) => void,
  concurrency: number,
): Promise<void> {
  let ids = await store.claimable();
  if (options.ids) {
    const missing: string[] = [];
    for (const id of options.ids) if (!(await store.get(id))) missing.push(id);
    if (missing.length > 0) throw new Error(`replay: no dead letter with id ${missing.join(", ")} in the store`);
    ids = [...new Set(options.ids)];
  }
  await runLanes(ids, concurrency, options.signal, async (id) => {
    const claim = await store.claim(id);
    if (!claim) {
      result.skipped.push(id);
      progress(id, ids.length, { skipped: true });
      return;
    }
    let error: RpcError | undefined;
    try {
      error = await send(claim.letter);
    } catch (err) {
      await claim.release().catch(() => undefined);
      throw err;
    }
    if (error) {
      // Cancelled by the replay's own signal: given back as it was, not counted as a failed replay.
      const ownCancel = error.category === "cancelled" && options.signal?.aborted === true;
      await claim.release(ownCancel ? undefined : failureOf(error));
      result.failed.push({ id, error });
    } else {
      await claim.complete();
      result.succeeded.push(id);
    }
    progress(id, ids.length, { error });
  });
  await store.compact?.();
}

/**
 * Runs `work` over `items` with at most `concurrency` at once, stopping new work when `signal`
 * aborts. A throwing `work` (a store that cannot write) stops every lane from taking more; the
 * first such error rejects once the lanes in flight have finished.
 */
async function runLanes<T>(items: readonly T[], concurrency: number, signal: AbortSignal | undefined, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < items.length && !signal?.aborted && !failure) {
      try {
        await work(items[next++]);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  if (failure) throw failure.error;
}

function failureOf(error: RpcError): DeadLetterFailure {
  return {
    code: error.code(),
    codeName: statusName(error.code()),
    details: error.details(),
    category: error.category,
    attempts: error.attempts,
    at: new Date().toISOString(),
  };
}
