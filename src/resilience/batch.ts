import { randomUUID } from "node:crypto";
import type { BaseCallOptions } from "../call/call-options";
import type { ResilienceCallOptions } from "./pool-resilience";
import type { UnaryMethod } from "../call/method";
import { RpcError } from "../core/rpc-error";
import { Status, statusName } from "../core/status";
import type { DeadLetter, DeadLetterStore } from "./dead-letter-store";
import type { ResilienceEvents } from "./events";
import { firstFailureTime } from "./retry-middleware";

/** The options of one call a batch or a replay makes. */
type CallOptions = BaseCallOptions & ResilienceCallOptions;

/** Options of `pool.batch(...)`. */
export interface BatchOptions {
  /** Calls in flight at once. Default 8. */
  concurrency?: number;
  /** Stops starting new items; items in flight are cancelled. Items not run are reported failed with CANCELLED. */
  signal?: AbortSignal;
  /** Options for every item's call (timeoutMs, retry, metadata, …); the batch's signal is added. */
  callOptions?: CallOptions;
  /**
   * Where items that fail for good go (every failure except the batch's own cancellation). A write
   * the store refuses never rejects the batch: see `BatchResult.deadLetterErrors`.
   */
  deadLetters?: DeadLetterStore;
  /** Called after each item settles, in completion order. */
  onProgress?: (progress: BatchProgress) => void;
  /** Where `deadLetter` events go (`pool.batch` passes `pool.resilience`, so metrics count them). */
  events?: ResilienceEvents;
}

/** Progress of a batch, after one more item settled. */
export interface BatchProgress {
  total: number;
  done: number;
  succeeded: number;
  failed: number;
  /** The item that just settled. */
  index: number;
  ok: boolean;
}

/** An item that failed; `deadLetterError` says why its dead letter could not be written. */
export interface BatchFailure {
  index: number;
  error: RpcError;
  /** The store's error when writing this item's dead letter failed (disk full, permission denied). */
  deadLetterError?: Error;
}

/** A dead letter the store refused: the letter itself, so the caller can keep it elsewhere. */
export interface DeadLetterWriteFailure {
  index: number;
  /** The letter that was not written (absent only when the request could not even be encoded). */
  letter?: DeadLetter;
  error: Error;
}

/** What a batch returns: every item is in exactly one of `succeeded` and `failed`, each sorted by index. */
export interface BatchResult<Res> {
  succeeded: { index: number; response: Res }[];
  failed: BatchFailure[];
  /** Ids of the dead letters written, in index order of their items. */
  deadLetterIds: string[];
  /**
   * Items whose dead letter the store could not write, in index order. The batch still resolves
   * with every result; these letters exist only here. Empty when every write succeeded.
   */
  deadLetterErrors: DeadLetterWriteFailure[];
}

/**
 * Runs `call` for every request with at most `concurrency` in flight. One failure never stops the
 * batch; each item ends in `succeeded` or `failed`. Items that fail for good are written to
 * `deadLetters` (with the encoded request from `method`, so they can be replayed byte for byte).
 */
export async function runBatch<Req, Res>(
  call: (request: Req, options?: CallOptions) => Promise<Res>,
  method: UnaryMethod<unknown, unknown> | undefined,
  requests: readonly Req[],
  options: BatchOptions = {},
): Promise<BatchResult<Res>> {
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`batch: concurrency must be an integer >= 1, got ${String(options.concurrency)}`);
  if (!Array.isArray(requests)) throw new TypeError("batch: requests must be an array");
  if (options.deadLetters && !method) {
    throw new TypeError("batch: dead letters need the method's encoding; pass a typed client's method (client.score) or a UnaryMethod, not a wrapper function");
  }
  const { signal, deadLetters, onProgress } = options;
  const total = requests.length;
  const succeeded: { index: number; response: Res }[] = [];
  const failed: BatchFailure[] = [];
  const letters: { index: number; id: string }[] = [];
  const deadLetterErrors: DeadLetterWriteFailure[] = [];
  const path = method?.path ?? "batch";
  let next = 0;
  const settle = (index: number, ok: boolean): void => {
    onProgress?.({ total, done: succeeded.length + failed.length, succeeded: succeeded.length, failed: failed.length, index, ok });
  };
  const runOne = async (index: number): Promise<void> => {
    const startedAt = Date.now();
    const request = requests[index];
    if (signal?.aborted) {
      failed.push({ index, error: new RpcError({ code: Status.CANCELLED, details: "batch cancelled before this item ran", category: "cancelled", method: path, reachedWorker: false, attempts: 0, attemptCodes: [] }) });
      settle(index, false);
      return;
    }
    try {
      const response = await call(request, { ...options.callOptions, ...(signal ? { signal } : {}) });
      succeeded.push({ index, response });
      settle(index, true);
    } catch (thrown) {
      const error = RpcError.from(thrown, path);
      const failure: BatchFailure = { index, error };
      if (deadLetters && method && error.category !== "cancelled") {
        let letter: DeadLetter | undefined;
        try {
          letter = deadLetterOf(method, request, error, index, firstFailureTime(error) ?? startedAt);
          await deadLetters.add(letter);
          letters.push({ index, id: letter.id });
          options.events?.report("deadLetter", { method: path, id: letter.id, error });
        } catch (writeError) {
          // The batch keeps going and keeps every result; the letter is handed back instead.
          failure.deadLetterError = asError(writeError);
          deadLetterErrors.push({ index, ...(letter ? { letter } : {}), error: failure.deadLetterError });
        }
      }
      failed.push(failure);
      settle(index, false);
    }
  };
  const lane = async (): Promise<void> => {
    while (next < total) await runOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
  succeeded.sort((a, b) => a.index - b.index);
  failed.sort((a, b) => a.index - b.index);
  letters.sort((a, b) => a.index - b.index);
  deadLetterErrors.sort((a, b) => a.index - b.index);
  return { succeeded, failed, deadLetterIds: letters.map((l) => l.id), deadLetterErrors };
}

/** Builds the dead letter of a failed call. */
export function deadLetterOf(method: UnaryMethod<unknown, unknown>, request: unknown, error: RpcError, batchIndex: number | undefined, firstFailureAt: number): DeadLetter {
  const now = new Date().toISOString();
  return {
    id: randomUUID(),
    method: method.path,
    request: method.serialize(request).toString("base64"),
    requestJson: jsonView(request),
    code: error.code(),
    codeName: statusName(error.code()),
    details: error.details(),
    category: error.category,
    attempts: error.attempts,
    firstFailureAt: new Date(firstFailureAt).toISOString(),
    lastFailureAt: now,
    replays: 0,
    ...(batchIndex !== undefined ? { source: { batchIndex } } : {}),
  };
}

/** A JSON-safe copy: bytes as base64, bigints as strings. */
function jsonView(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
      if (v && typeof v === "object" && (v as { type?: unknown }).type === "Buffer" && Array.isArray((v as { data?: unknown }).data)) {
        return Buffer.from((v as { data: number[] }).data).toString("base64");
      }
      return v;
    }) ?? "null",
  );
}

/** The thrown value itself when it is error-like (keeps `code`, e.g. ENOSPC), else an Error of its text. */
function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (thrown && typeof thrown === "object" && typeof (thrown as { message?: unknown }).message === "string") return thrown as Error;
  return new Error(String(thrown));
}
