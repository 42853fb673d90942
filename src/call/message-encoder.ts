import { BinaryWriter } from "@bufbuild/protobuf/wire";
import type { MessageType } from "./definition";

/**
 * Encodes request messages with one reused `BinaryWriter` (issue 15 §1). A fresh writer grows its
 * buffer from a few bytes by doubling, so a 1 MiB message cost a series of allocations of new,
 * zeroed memory and as many copies before `finish()` made the final one; a writer kept from the
 * previous call already has the room. Only message types whose `encode` returns this package's
 * `BinaryWriter` get the shared one (probed on their first encode): definitions generated for
 * another protobuf runtime keep encoding with their own writer.
 */

/** A writer is kept for the next call only after messages up to this size (its buffer is at most twice that). */
export const RETAINED_WRITER_MAX_BYTES = 64 << 20;
/** A writer that held a message over this size is dropped once no such message was encoded for {@link LARGE_WRITER_IDLE_MS}. */
export const LARGE_WRITER_BYTES = 4 << 20;
/** How long a writer grown by a large message is kept without another one. */
export const LARGE_WRITER_IDLE_MS = 1000;

type EncodeInto<T> = (message: T, writer: BinaryWriter) => { finish(): Uint8Array };

interface SpareWriter {
  readonly writer: BinaryWriter;
  /** The largest message this writer encoded: its buffer is at most about twice this. */
  holds: number;
}

const takesSharedWriter = new WeakMap<object, boolean>();
let spare: SpareWriter | undefined;
let idleRelease: ReturnType<typeof setTimeout> | undefined;

/** `type.encode(message).finish()` as a Buffer over the same bytes. */
export function encodeMessage<T>(type: MessageType<T>, message: T): Buffer {
  let bytes: Uint8Array;
  const shared = takesSharedWriter.get(type);
  if (shared === true) {
    // Taken, not borrowed: an encode that throws leaves a writer in an unknown state, so it is dropped.
    const taken = spare ?? { writer: new BinaryWriter(), holds: 0 };
    spare = undefined;
    bytes = (type.encode as EncodeInto<T>)(message, taken.writer).finish();
    if (bytes.byteLength <= RETAINED_WRITER_MAX_BYTES) {
      taken.holds = Math.max(taken.holds, bytes.byteLength);
      spare = taken;
      if (bytes.byteLength > LARGE_WRITER_BYTES) releaseWhenIdle();
    }
  } else {
    const writer = type.encode(message);
    if (shared === undefined) takesSharedWriter.set(type, writer instanceof BinaryWriter);
    bytes = writer.finish();
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The size of the largest message the kept writer encoded (0: none kept). For tests and diagnostics. */
export function sharedWriterHolds(): number {
  return spare?.holds ?? 0;
}

function releaseWhenIdle(): void {
  if (idleRelease !== undefined) {
    idleRelease.refresh();
    return;
  }
  idleRelease = setTimeout(() => {
    idleRelease = undefined;
    if (spare !== undefined && spare.holds > LARGE_WRITER_BYTES) spare = undefined;
  }, LARGE_WRITER_IDLE_MS);
  idleRelease.unref?.();
}
