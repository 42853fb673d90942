import type { CallOptions } from "../call/call-options";
import type { UnaryMiddleware } from "../call/interceptor";
import type { StreamMethod } from "../call/stream-method";

/** Opens one attempt of a server stream with the attempt's options (deadline, workers to avoid). */
export type OpenServerStream<Res> = (options: CallOptions, avoidWorkers: ReadonlySet<string> | undefined) => AsyncIterator<Res>;

/**
 * A server stream under the retry policy, up to its first message only: opening the stream and
 * receiving the first message (or its clean end) is one attempt that `retry` may repeat, on
 * another worker, by the same rules as a unary call (docs/resilience.md). Once a message has
 * been delivered the stream is never repeated: the caller would see messages twice.
 * Client and bidirectional streams are not retried at all, because the caller's request
 * iterable cannot be replayed.
 */
export async function* retryingServerStream<Res>(retry: UnaryMiddleware, method: StreamMethod<unknown, Res>, request: unknown, options: CallOptions, open: OpenServerStream<Res>): AsyncGenerator<Res> {
  let iterator: AsyncIterator<Res> | undefined;
  const first = (await retry({ method, request, options }, async (attempt) => {
    // The retry policy's per-attempt timeout is about getting the stream going; the stream
    // itself keeps the caller's own limits (and the overall deadline the policy computed).
    const candidate = open({ ...attempt.options, timeoutMs: options.timeoutMs }, attempt.avoidWorkers);
    const result = await candidate.next();
    iterator = candidate;
    return result;
  })) as IteratorResult<Res>;
  if (first.done) return;
  yield first.value;
  const rest = iterator as AsyncIterator<Res>;
  try {
    for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
  } finally {
    // Leaving early (break) must end the underlying call, which cancels it in the worker.
    await rest.return?.();
  }
}
