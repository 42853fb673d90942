import type { BaseCallOptions } from "../call/call-options";
import type { ResilienceCallOptions } from "./pool-resilience";
import type { UnaryMethod } from "../call/method";
import { RpcError } from "../core/rpc-error";
import { statusName } from "../core/status";
import type { DeadLetter, DeadLetterStore } from "./dead-letter-store";
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
  /** Called after each letter settles. */
  onProgress?: (event: { id: string; ok: boolean; done: number; total: number; error?: RpcError }) => void;
}

/** What a replay did. */
export interface ReplayResult {
  /** Letters replayed successfully and removed from the store. */
  succeeded: string[];
  /** Letters whose replay failed; they stay in the store with the new failure recorded. */
  failed: { id: string; error: RpcError }[];
}

/**
 * Re-sends dead letters (their original encoded bytes) through `pool` and removes each one only
 * after its call succeeded; a failed replay is recorded on the letter. Because removal follows
 * success and every store change is durable, a replay that crashes midway loses nothing: each
 * letter is either still in the store or was replayed and removed. (A crash between a success and
 * its removal leaves that letter in the store, so it may be sent again: delivery is at least once.)
 */
export async function replayDeadLetters(store: DeadLetterStore, pool: UnaryRunner, options: ReplayOptions = {}): Promise<ReplayResult> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`replay: concurrency must be an integer >= 1, got ${String(options.concurrency)}`);
  let letters = await store.list();
  if (options.ids) {
    const missing = options.ids.filter((id) => !letters.some((l) => l.id === id));
    if (missing.length > 0) throw new Error(`replay: no dead letter with id ${missing.join(", ")} in the store`);
    const wanted = new Set(options.ids);
    letters = letters.filter((l) => wanted.has(l.id));
  }
  const result: ReplayResult = { succeeded: [], failed: [] };
  let next = 0;
  const replayOne = async (letter: DeadLetter): Promise<void> => {
    try {
      await pool.unary(rawUnaryMethod(letter.method), Buffer.from(letter.request, "base64"), { ...options.callOptions, ...(options.signal ? { signal: options.signal } : {}) });
    } catch (thrown) {
      const error = RpcError.from(thrown, letter.method);
      await store.recordFailure(letter.id, {
        code: error.code(),
        codeName: statusName(error.code()),
        details: error.details(),
        category: error.category,
        attempts: error.attempts,
        at: new Date().toISOString(),
      });
      result.failed.push({ id: letter.id, error });
      options.onProgress?.({ id: letter.id, ok: false, done: result.succeeded.length + result.failed.length, total: letters.length, error });
      return;
    }
    await store.remove(letter.id);
    result.succeeded.push(letter.id);
    options.onProgress?.({ id: letter.id, ok: true, done: result.succeeded.length + result.failed.length, total: letters.length });
  };
  const lane = async (): Promise<void> => {
    while (next < letters.length && !options.signal?.aborted) await replayOne(letters[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, letters.length) }, lane));
  await store.compact?.();
  return result;
}
