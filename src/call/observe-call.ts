import type { Call, Next } from "./interceptor";
import { iteratorOf, type RequestSource } from "./request-iterator";

/** What an observing interceptor (metrics, tracing, logs) hears about one call of any kind. */
export interface CallObserver {
  /** A request message went out (once for unary and server-stream calls, per message for client and bidi streams). */
  onRequest?(): void;
  /** A response message arrived (once for unary and client-stream calls, per message for server and bidi streams). */
  onResponse?(): void;
  /**
   * The call ended: `error` is undefined on success. Called exactly once. A consumer that stops
   * reading a response stream early ends it with `abandoned: true` (the worker saw a cancellation).
   */
  onEnd(error: unknown, abandoned: boolean): void;
}

/**
 * Runs `next(call)` and reports to `observer`, for every kind of call: counts request and
 * response messages of streams as they pass and reports the end of a stream when its consumer
 * reaches it (or leaves early). The call's results are passed through untouched.
 */
export async function observeCall(call: Call, next: Next, observer: CallObserver): Promise<unknown> {
  let ended = false;
  const end = (error: unknown, abandoned = false): void => {
    if (ended) return;
    ended = true;
    observer.onEnd(error, abandoned);
  };
  const streamingRequests = call.kind === "client-stream" || call.kind === "bidi-stream";
  const onRequest = observer.onRequest?.bind(observer);
  const observed: Call = streamingRequests && onRequest ? { ...call, request: countingIterable(call.request as RequestSource, onRequest) } : call;
  if (!streamingRequests) onRequest?.();
  let result: unknown;
  try {
    result = await next(observed);
  } catch (err) {
    end(err);
    throw err;
  }
  if (call.kind === "unary" || call.kind === "client-stream") {
    observer.onResponse?.();
    end(undefined);
    return result;
  }
  return observedStream(result as AsyncIterable<unknown>, observer, end);
}

/** A request iterable that reports each message the transport pulls from it. */
function countingIterable(source: RequestSource, onItem: () => void): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<unknown> {
      const inner = iteratorOf(source);
      return {
        async next() {
          const r = await inner.next();
          if (!r.done) onItem();
          return r;
        },
        async return(value?: unknown) {
          await inner.return?.(value);
          return { done: true, value: undefined };
        },
      };
    },
  };
}

/** A response stream that reports each message, and its end when the consumer reaches it or leaves. */
function observedStream(source: AsyncIterable<unknown>, observer: CallObserver, end: (error: unknown, abandoned?: boolean) => void): AsyncIterableIterator<unknown> {
  const inner = source[Symbol.asyncIterator]();
  let done = false;
  const it: AsyncIterableIterator<unknown> = {
    [Symbol.asyncIterator]() {
      return it;
    },
    async next() {
      if (done) return { done: true, value: undefined };
      let r: IteratorResult<unknown>;
      try {
        r = await inner.next();
      } catch (err) {
        done = true;
        end(err);
        throw err;
      }
      if (r.done) {
        done = true;
        end(undefined);
      } else {
        observer.onResponse?.();
      }
      return r;
    },
    async return(value?: unknown) {
      if (!done) {
        done = true;
        end(undefined, true);
      }
      await inner.return?.(value);
      return { done: true, value: undefined };
    },
  };
  return it;
}
