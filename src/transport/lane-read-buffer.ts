/**
 * One buffer reused for reading unary responses' lane files (issue 15 §1). A fresh buffer per
 * response was one more message-sized piece of external memory per call for V8 to collect: with
 * 1 MiB responses, a mark-compact GC every ~9 calls, ~1.3 ms of GC per call.
 *
 * A decoded message may keep views of the bytes it was decoded from (ts-proto's Node output
 * copies `bytes` fields, its browser output and protobuf-es return views), and a later read into
 * the same buffer would change such a message's bytes under its owner. So after each decode the
 * message is searched for views of the buffer, within a bounded number of values: a buffer seen
 * in a message, or a message too large to search, is left to the message, and the next read gets
 * a new buffer.
 */

/** A buffer is kept for the next read only up to this size. */
export const RETAINED_READ_BUFFER_MAX_BYTES = 64 << 20;
/** A kept buffer over this size is dropped once no read needed it for {@link LARGE_READ_BUFFER_IDLE_MS}. */
export const LARGE_READ_BUFFER_BYTES = 4 << 20;
/** How long a large buffer is kept without a read that needs it. */
export const LARGE_READ_BUFFER_IDLE_MS = 1000;
/** How many objects and arrays of a decoded message are searched for views before giving up (and giving the buffer away). */
export const VIEW_SEARCH_LIMIT = 4096;

export class LaneReadBuffer {
  private spare: Buffer | undefined;
  private idleRelease: ReturnType<typeof setTimeout> | undefined;

  /** A buffer of at least `bytes` bytes, the caller's until {@link giveBack}. */
  take(bytes: number): Buffer {
    const spare = this.spare;
    this.spare = undefined;
    return spare !== undefined && spare.length >= bytes ? spare : Buffer.allocUnsafe(bytes);
  }

  /** Returns `buffer` after `decoded` was made from its bytes: kept unless `decoded` may hold a view of it. */
  giveBack(buffer: Buffer, decoded: unknown): void {
    if (buffer.length > RETAINED_READ_BUFFER_MAX_BYTES || mayHoldViewOf(decoded, buffer.buffer)) return;
    this.spare = buffer;
    if (buffer.length > LARGE_READ_BUFFER_BYTES) this.releaseWhenIdle();
  }

  /** The size of the kept buffer (0: none). For tests and diagnostics. */
  get kept(): number {
    return this.spare?.length ?? 0;
  }

  private releaseWhenIdle(): void {
    if (this.idleRelease !== undefined) {
      this.idleRelease.refresh();
      return;
    }
    this.idleRelease = setTimeout(() => {
      this.idleRelease = undefined;
      if (this.spare !== undefined && this.spare.length > LARGE_READ_BUFFER_BYTES) this.spare = undefined;
    }, LARGE_READ_BUFFER_IDLE_MS);
    this.idleRelease.unref?.();
  }
}

/**
 * True when `value` holds a view (a typed array or DataView) over `memory`, or may: when it has
 * more than {@link VIEW_SEARCH_LIMIT} objects and arrays to search.
 */
export function mayHoldViewOf(value: unknown, memory: ArrayBufferLike, limit = VIEW_SEARCH_LIMIT): boolean {
  const stack: unknown[] = [value];
  let visited = 0;
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item !== "object" || item === null) continue;
    if (ArrayBuffer.isView(item)) {
      if (item.buffer === memory) return true;
      continue;
    }
    if (++visited > limit) return true;
    if (Array.isArray(item)) {
      // Repeated scalars (numbers, strings, booleans, bigints) hold no views: not searched one by one.
      if (item.length > 0 && (typeof item[0] !== "object" || item[0] === null)) continue;
      for (const element of item) stack.push(element);
    } else if (item instanceof Map) {
      for (const entry of item.values()) stack.push(entry);
    } else {
      for (const key in item) stack.push((item as Record<string, unknown>)[key]);
    }
  }
  return false;
}
