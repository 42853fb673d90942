import type { LaneRef } from "../gen/procgrpc/internal/v1/pipeline";

/**
 * A unary call's request as a transport takes it: its serialized bytes, or, for a large request
 * of a local pool with the shared-memory lane, a lane file that already holds them
 * ({@link LaneRequest}).
 */
export type UnaryRequest = Buffer | LaneRequest;

/** What a {@link LaneRequest} needs of the lane that holds its file. */
export interface LaneRequestFileOwner {
  /** Reads (and removes) the file of `ref`; throws a `LaneError`. */
  read(ref: LaneRef): Buffer;
  /** Removes the file of `ref` unread; quiet when it is gone. */
  discard(ref: LaneRef): void;
}

/**
 * A request written to a lane file as it was serialized, straight from the message's own large
 * `bytes` values (src/call/message-parts.ts): never copied into a Buffer of its own. Whoever
 * holds it sends its reference, reads it back, or discards it: its file is nobody else's.
 */
export class LaneRequest {
  constructor(
    /** The file's reference, as a `PipeCall` carries it. */
    readonly ref: LaneRef,
    /** The serialized request's length. */
    readonly byteLength: number,
    private readonly owner: LaneRequestFileOwner,
  ) {}

  /** The serialized bytes, read back from the file (removed): for a call that does not take the lane after all. Throws a `LaneError`. */
  bytes(): Buffer {
    return this.owner.read(this.ref);
  }

  /** Removes the file: the request will not be sent. */
  discard(): void {
    this.owner.discard(this.ref);
  }
}

/** The serialized length of `request`. */
export function requestLength(request: UnaryRequest): number {
  return request instanceof LaneRequest ? request.byteLength : request.length;
}

/** The serialized bytes of `request` (a lane request's read back). Throws a `LaneError` when its file cannot be read. */
export function requestBytes(request: UnaryRequest): Buffer {
  return request instanceof LaneRequest ? request.bytes() : request;
}

/** Frees what holds a request that will not be sent (a lane request's file). */
export function discardRequest(request: UnaryRequest | undefined): void {
  if (request instanceof LaneRequest) request.discard();
}
