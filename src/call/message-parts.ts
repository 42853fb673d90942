import { BinaryWriter } from "@bufbuild/protobuf/wire";
import type { MessageType } from "./definition";

/**
 * A message's encoding as a list of parts whose large `bytes` fields are the caller's own memory,
 * not copies (issue 15 §1). Written back to back (`writev`) they are exactly `encode().finish()`.
 * A large request bound for the shared-memory lane is written to its file from these parts: the
 * 16 MiB tensor is copied once, by the kernel, into the file, instead of into the writer, out of
 * it by `finish()` (new memory, page faults) and then into the file.
 *
 * Only for message types whose `encode(message, writer)` writes into the writer it is given
 * (ts-proto's output over this package's `@bufbuild/protobuf`); others get `undefined` and are
 * encoded as usual.
 */

/** `bytes` values of at least this many bytes are kept by reference; smaller ones are copied as usual. */
export const REFERENCED_BYTES_MIN = 64 << 10;
/** How many values (objects, arrays, typed arrays) of a message are searched for a large `bytes` value before giving up. */
const SEARCH_LIMIT = 4096;

/**
 * A `BinaryWriter` that keeps large `bytes` values as parts of their own. Length-delimited
 * nesting (`fork`/`join`) is tracked over the parts, so a large value inside a nested message
 * (a tensor's data) is kept by reference too; each `join` puts the nested length's varint in
 * front of the parts it covers.
 */
class PartsWriter extends BinaryWriter {
  private readonly parts: Uint8Array[] = [];
  /** For each open fork: the index of its first part. */
  private readonly forks: number[] = [];

  constructor(private readonly minReferencedBytes: number) {
    super();
  }

  override bytes(value: Uint8Array): this {
    if (value.byteLength < this.minReferencedBytes) return super.bytes(value);
    this.uint32(value.byteLength);
    this.flush();
    this.parts.push(value);
    return this;
  }

  override fork(): this {
    this.flush();
    this.forks.push(this.parts.length);
    return this;
  }

  override join(): this {
    const start = this.forks.pop();
    if (start === undefined) throw new Error("invalid state, fork stack empty");
    this.flush();
    let length = 0;
    for (let i = start; i < this.parts.length; i++) length += (this.parts[i] as Uint8Array).byteLength;
    this.parts.splice(start, 0, new BinaryWriter().uint32(length).finish());
    return this;
  }

  /** Every part, in order; the writer is spent. */
  takeParts(): Uint8Array[] {
    if (this.forks.length > 0) throw new Error("invalid state, unjoined fork");
    this.flush();
    return this.parts;
  }

  /** What the base writer holds becomes a part. */
  private flush(): void {
    const pending = super.finish();
    if (pending.byteLength > 0) this.parts.push(pending);
  }
}

/** Types whose `encode` did not write into the writer it was given (another runtime). */
const ignoresWriter = new WeakSet<object>();

/**
 * The encoding of `message` as parts when it holds a `bytes` value of at least `minBytes`
 * (searched within a bounded number of values); `undefined` otherwise, or when the type does not
 * encode into a given writer. Values of {@link REFERENCED_BYTES_MIN} or more are the caller's
 * own memory in the parts: write them out before the caller may change them.
 */
export function encodeMessageParts<T>(type: MessageType<T>, message: T, minBytes: number): Uint8Array[] | undefined {
  if (ignoresWriter.has(type) || !holdsLargeBytes(message, minBytes)) return undefined;
  const writer = new PartsWriter(REFERENCED_BYTES_MIN);
  const written = (type.encode as (m: T, w: BinaryWriter) => unknown)(message, writer);
  if (written !== writer) {
    ignoresWriter.add(type);
    return undefined;
  }
  return writer.takeParts();
}

/** The byte length of `parts` written back to back. */
export function partsLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  return n;
}

/**
 * Whether `value` (a message, or the partial object it is built from) holds a typed array of at
 * least `minBytes` and {@link REFERENCED_BYTES_MIN}: what {@link encodeMessageParts} needs to
 * return parts. True also when it is too large to search. Cheap for a small message: the check a
 * call makes before building its message twice.
 */
export function holdsLargeBytes(value: unknown, minBytes: number): boolean {
  const min = Math.max(minBytes, REFERENCED_BYTES_MIN);
  if (typeof value !== "object" || value === null) return false;
  const pending: object[] = [value];
  let searched = 0;
  while (pending.length > 0) {
    const v = pending.pop() as object;
    if (++searched > SEARCH_LIMIT) return true;
    if (ArrayBuffer.isView(v)) {
      if (v.byteLength >= min) return true;
      continue;
    }
    for (const key in v) {
      const child = (v as Record<string, unknown>)[key];
      if (typeof child === "object" && child !== null) pending.push(child);
    }
  }
  return false;
}
