/** Options for `pushable()`. */
export interface PushableOptions {
  /**
   * How many written messages may wait for the stream before `write()` starts waiting too.
   * Default 1 (one message ahead); 0: every `write()` waits until the stream has taken its message.
   */
  highWaterMark?: number;
}

/**
 * A push-style writer for client-streaming and bidirectional calls: pass it as the requests and
 * `write()` messages into it. The call pulls messages only as HTTP/2 flow control lets it, so
 * awaiting `write()` is backpressure from the worker. One call reads it, once.
 */
export interface Pushable<T> extends AsyncIterable<T> {
  /**
   * Sends `message`. Resolves when the stream has taken it (or at once while fewer than
   * `highWaterMark` messages wait); rejects after `end()`, after `cancel()`, and once the call
   * stopped taking requests (with the call's `RpcError` when it failed).
   */
  write(message: T): Promise<void>;
  /** No more messages: the call's request side is half-closed once the waiting ones are taken. Idempotent. */
  end(): void;
  /**
   * Ends the call: messages not yet taken are dropped and the call fails with CANCELLED, whose
   * `cause` is `reason` (default: an Error saying the writer cancelled). No-op once the call stopped reading.
   */
  cancel(reason?: unknown): void;
  /** False after `end()` or `cancel()`, or once the call stopped taking requests. */
  readonly writable: boolean;
  /** Messages written and not yet taken by the stream. */
  readonly buffered: number;
}

/** How the pool tells a request source that its call is over (a pushable's pending writes then reject). */
const CLOSE = Symbol.for("procgrpc.requests.close");

interface Closable {
  [CLOSE](reason: unknown): void;
}

/**
 * Tells `requests` that its call ended with `reason` before taking them all; a `pushable()`
 * rejects its waiting and later writes with `reason`. Other iterables are left alone.
 */
export function closeRequests(requests: unknown, reason: unknown): void {
  const closable = requests as Partial<Closable> | null | undefined;
  if (closable && typeof closable[CLOSE] === "function") closable[CLOSE](reason);
}

interface Waiting<T> {
  readonly message: T;
  /** Settles the writer's promise; undefined once it has been resolved. */
  settle: { resolve: () => void; reject: (err: unknown) => void } | undefined;
}

type State = "open" | "ended" | "cancelled" | "closed";

/**
 * Creates a push-style request stream (see `Pushable`). Ping-pong over a bidirectional call:
 *
 * ```ts
 * const requests = pushable<ChatRequest>();
 * const replies = client.chat(requests)[Symbol.asyncIterator]();
 * await requests.write({ text: "hello" });
 * const first = await replies.next();            // decide the next message from the answer
 * await requests.write({ text: `you said ${first.value.text}` });
 * requests.end();
 * ```
 */
export function pushable<T>(options: PushableOptions = {}): Pushable<T> {
  const highWaterMark = options.highWaterMark ?? 1;
  if (!Number.isInteger(highWaterMark) || highWaterMark < 0) throw new RangeError(`pushable: highWaterMark must be an integer >= 0, got ${String(highWaterMark)}`);
  const queue: Waiting<T>[] = [];
  const readers: { resolve: (r: IteratorResult<T>) => void; reject: (err: unknown) => void }[] = [];
  let state: State = "open";
  let reason: unknown;
  let closed = false;
  let iterated = false;
  let cancelPending = false; // cancel() before the reader asked again: its next next() throws

  const closedError = (why: unknown): unknown => (why instanceof Error ? why : new Error("pushable: the call stopped taking requests; the message was not sent", { cause: why }));
  const refusal = (): unknown => {
    if (state === "ended") return new Error("pushable: write() after end()");
    if (state === "cancelled") return new Error("pushable: write() after cancel()", { cause: reason });
    return closedError(reason);
  };

  const dropQueued = (err: unknown): void => {
    for (const w of queue.splice(0)) w.settle?.reject(err);
  };

  /** Resolves the writes that now fit in the buffer. */
  const admitWaiting = (): void => {
    for (let i = 0; i < Math.min(highWaterMark, queue.length); i++) {
      const w = queue[i];
      w.settle?.resolve();
      w.settle = undefined;
    }
  };

  const finishReaders = (): void => {
    for (const r of readers.splice(0)) r.resolve({ done: true, value: undefined });
  };

  /** The call is over (the stream stopped reading, or the pool says it failed). */
  const close = (why: unknown): void => {
    if (closed) return;
    closed = true;
    cancelPending = false;
    dropQueued(closedError(why));
    finishReaders();
    if (state === "open") {
      state = "closed";
      reason = why;
    }
  };

  const iterator: AsyncIterator<T> = {
    next(): Promise<IteratorResult<T>> {
      const head = queue.shift();
      if (head) {
        head.settle?.resolve();
        admitWaiting();
        return Promise.resolve({ done: false, value: head.message });
      }
      if (cancelPending) {
        cancelPending = false;
        return Promise.reject(reason);
      }
      if (state !== "open" || closed) return Promise.resolve({ done: true, value: undefined });
      return new Promise((resolve, reject) => readers.push({ resolve, reject }));
    },
    return(): Promise<IteratorResult<T>> {
      close(undefined);
      return Promise.resolve({ done: true, value: undefined });
    },
  };

  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      if (iterated) throw new TypeError("pushable: it can be read once, by one call; create a new pushable() for each call");
      iterated = true;
      return iterator;
    },
    write(message: T): Promise<void> {
      if (state !== "open") return Promise.reject(refusal());
      const reader = readers.shift();
      if (reader) {
        reader.resolve({ done: false, value: message });
        return Promise.resolve();
      }
      if (queue.length < highWaterMark) {
        queue.push({ message, settle: undefined });
        return Promise.resolve();
      }
      return new Promise((resolve, reject) => queue.push({ message, settle: { resolve, reject } }));
    },
    end(): void {
      if (state !== "open") return;
      state = "ended";
      if (queue.length === 0) finishReaders();
    },
    cancel(why?: unknown): void {
      if (closed || state === "cancelled") return;
      state = "cancelled";
      reason = why ?? new Error("the writer cancelled the call");
      dropQueued(new Error("pushable: cancelled before the stream took this message", { cause: reason }));
      const waiting = readers.splice(0);
      if (waiting.length === 0) cancelPending = true;
      for (const r of waiting) r.reject(reason);
    },
    get writable(): boolean {
      return state === "open";
    },
    get buffered(): number {
      return queue.length;
    },
    [CLOSE]: close,
  } as Pushable<T> & Closable;
}
