/** The requests of a client or bidirectional call: any sync or async iterable. */
export type RequestSource = AsyncIterable<unknown> | Iterable<unknown>;

/** Starts iterating `source` (async or sync); a value that is neither is a TypeError. */
export function iteratorOf(source: unknown): AsyncIterator<unknown> | Iterator<unknown> {
  const s = source as { [Symbol.asyncIterator]?: () => AsyncIterator<unknown>; [Symbol.iterator]?: () => Iterator<unknown> } | null | undefined;
  const asyncIterator = s?.[Symbol.asyncIterator];
  if (typeof asyncIterator === "function") return asyncIterator.call(s);
  const syncIterator = s?.[Symbol.iterator];
  if (typeof syncIterator === "function") return syncIterator.call(s);
  throw new TypeError(`requests must be an iterable or an async iterable of messages, got ${s === null ? "null" : typeof s}`);
}
