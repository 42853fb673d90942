import { LaneRef } from "../gen/procgrpc/internal/v1/pipeline";
import type { PipeLane } from "./lane-pipe";
import { LaneError } from "./shared-memory-lane";

/**
 * Stream calls of a pool with the shared-memory lane go to the worker's alias of the method,
 * `/procgrpc.internal.v1.Lane/<service>/<method>`, whose messages are lane frames (below).
 */
export const LANE_STREAM_PREFIX = "/procgrpc.internal.v1.Lane";

/**
 * The lane bytes one direction of one stream may have written and not yet seen consumed. Over
 * it, messages go inline, where HTTP/2 flow control holds a producer back: a slow consumer
 * cannot make the producer fill the lane's filesystem. The worker uses the same bound.
 */
export const STREAM_LANE_OUTSTANDING_BYTES = 8 * 1024 * 1024;

// A lane frame is one tag byte, then the message itself (inline) or an encoded LaneRef.
const INLINE = 0;
const REFERENCE = 1;
const INLINE_TAG = Buffer.from([INLINE]);
const REFERENCE_TAG = Buffer.from([REFERENCE]);

/** The alias path of a stream method for a pool with the lane. */
export function laneStreamPath(methodPath: string): string {
  return LANE_STREAM_PREFIX + methodPath;
}

/**
 * The lane files one stream call wrote (its requests): a message at or over the lane's threshold
 * becomes a file while this call's unread files stay under {@link STREAM_LANE_OUTSTANDING_BYTES};
 * files still unread when the call ends are removed (`close`).
 */
export class StreamLaneFiles {
  private written: LaneRef[] = [];
  private closed = false;

  constructor(private readonly lane: PipeLane) {}

  /** The frame for one serialized request message. */
  frame(message: Buffer): Buffer {
    if (!this.closed && this.lane.takes(message.length)) {
      const outstanding = this.outstanding();
      // One message may exceed the bound on its own when nothing else is outstanding.
      if (outstanding === 0 || outstanding + message.length <= STREAM_LANE_OUTSTANDING_BYTES) {
        const ref = this.lane.outgoing(message);
        if (ref) {
          this.written.push(ref);
          return Buffer.concat([REFERENCE_TAG, LaneRef.encode(ref).finish()]);
        }
      }
    }
    return Buffer.concat([INLINE_TAG, message]);
  }

  /** The message bytes of one response frame (a lane file is read and removed). Throws a `LaneError`. */
  unframe(frame: Buffer): Buffer {
    return unframe(this.lane, frame);
  }

  /** The call ended: remove the files its reader never opened. */
  close(): void {
    this.closed = true;
    for (const ref of this.written.splice(0)) this.lane.discard(ref);
  }

  private outstanding(): number {
    let bytes = 0;
    this.written = this.written.filter((ref) => {
      const unread = this.lane.holds(ref);
      if (unread) bytes += ref.length;
      return unread;
    });
    return bytes;
  }
}

/** The message bytes of a lane frame. Throws a `LaneError` for a frame that is neither kind or a file that cannot be read. */
export function unframe(lane: PipeLane, frame: Buffer): Buffer {
  if (frame.length > 0 && frame[0] === INLINE) return frame.subarray(1);
  if (frame.length > 0 && frame[0] === REFERENCE) {
    let ref: LaneRef;
    try {
      ref = LaneRef.decode(frame.subarray(1));
    } catch (err) {
      throw new LaneError("invalid-reference", `a stream message's lane reference does not decode: ${(err as Error).message}`, { cause: err });
    }
    return lane.read(ref);
  }
  throw new LaneError("invalid-reference", `a stream message is not a lane frame (tag ${frame.length > 0 ? frame[0] : "missing"})`);
}
