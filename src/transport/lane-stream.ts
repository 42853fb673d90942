import { LaneRef } from "../gen/procgrpc/internal/v1/pipeline";
import type { PipeLane } from "./lane-pipe";
import { LaneError } from "./shared-memory-lane";

/**
 * Stream calls of a pool with the shared-memory lane go to the worker's alias of the method,
 * `/procgrpc.internal.v1.Lane/<service>/<method>`: the requests are the method's own messages,
 * each response is a lane frame (below). Only responses take the lane: measured
 * (docs/benchmarks.md, "Stream messages through the shared-memory lane"), stream requests
 * through lane files cost more CPU than inline, while large responses cost less.
 */
export const LANE_STREAM_PREFIX = "/procgrpc.internal.v1.Lane";

/**
 * The lane bytes the worker lets one stream's responses have outstanding (written, not yet
 * opened here). Over it, responses go inline, where HTTP/2 flow control holds the producer
 * back: a slow consumer cannot make the producer fill the lane's filesystem.
 */
export const STREAM_LANE_OUTSTANDING_BYTES = 8 * 1024 * 1024;

// A lane frame is one tag byte, then the message itself (inline) or an encoded LaneRef.
const INLINE = 0;
const REFERENCE = 1;

/** The alias path of a stream method for a pool with the lane. */
export function laneStreamPath(methodPath: string): string {
  return LANE_STREAM_PREFIX + methodPath;
}

/** The message bytes of a lane frame (a lane file is read and removed). Throws a `LaneError` for a frame of neither kind or a file that cannot be read. */
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
