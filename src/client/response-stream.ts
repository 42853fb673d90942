/**
 * The response stream a client method hands out for server-streaming and bidirectional calls:
 * one object that is both the iterable and its iterator. However the consumer stops — reaching
 * the end, `break`/`return`/a throw in a `for await` body (which call `return()`), or dropping
 * the object without finishing (found by garbage collection) — the call is ended and its worker
 * capacity released; it is never left running.
 */
export interface ResponseStreamStart {
  /** Starts the call with `signal` (the caller's, combined with the one that ends an abandoned stream). */
  (signal: AbortSignal): Promise<AsyncIterable<unknown>>;
}

/** Ends calls whose response stream was dropped unfinished. */
const abandoned = new FinalizationRegistry<AbortController>((controller) => {
  controller.abort(new Error("the response stream was dropped before its end"));
});

/**
 * Builds the response stream. `eager`: start the call now (bidirectional calls, so that a
 * push-style writer can send before anyone reads); otherwise at the first `next()` (server streams).
 */
export function responseStream(start: ResponseStreamStart, callerSignal: AbortSignal | undefined, eager: boolean): AsyncIterableIterator<unknown> {
  const controller = new AbortController();
  const signal = callerSignal ? AbortSignal.any([callerSignal, controller.signal]) : controller.signal;
  let started: Promise<AsyncIterator<unknown>> | undefined;
  let finished = false;
  const begin = (): Promise<AsyncIterator<unknown>> => {
    started ??= start(signal).then((iterable) => iterable[Symbol.asyncIterator]());
    return started;
  };
  const token = {};
  // Nothing the call's machinery holds may reach this object (closures here use `this`), or a
  // dropped stream would never be collected.
  const stream: AsyncIterableIterator<unknown> = {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (finished) return { done: true, value: undefined };
      let result: IteratorResult<unknown>;
      try {
        result = await (await begin()).next();
      } catch (err) {
        finish();
        throw err;
      }
      if (result.done) finish();
      return result;
    },
    async return(value?: unknown) {
      if (!finished) {
        finish();
        if (started) await (await started.catch(() => undefined))?.return?.(value);
        else controller.abort(new Error("the response stream was closed before it started"));
      }
      return { done: true, value: undefined };
    },
  };
  const finish = (): void => {
    finished = true;
    abandoned.unregister(token);
  };
  abandoned.register(stream, controller, token);
  if (eager) begin().catch(() => undefined); // the error is reported by next()
  return stream;
}
