import type { Logger } from "../core/logger";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { LaneRef, MetadataEntry, PipeResult } from "../gen/procgrpc/internal/v1/pipeline";
import { LaneReadBuffer } from "./lane-read-buffer";
import { LaneError, type LaneReference, type SharedMemoryLane } from "./shared-memory-lane";

/**
 * The trailer a worker adds when it could not read a request's lane file (its answer is then
 * INTERNAL): the pool turns that answer into a `protocol` error, as it does for a response file
 * it cannot read itself.
 */
export const LANE_ERROR_TRAILER = "procgrpc-lane-error";

/** The prefix of the lane files worker process `pid` writes (so the pool can sweep them when it exits). */
export function workerLanePrefix(pid: number): string {
  return `p${pid}`;
}

/** The thresholds a {@link PipeLane} places messages by. */
export interface PipeLaneSettings {
  /** Serialized messages of at least this many bytes take the lane. */
  readonly thresholdBytes: number;
  /** Bytes that must stay free in the lane's filesystem after a write, else the message goes inline. */
  readonly reserveBytes: number;
}

/**
 * The shared-memory lane as the pipelined transport uses it (docs/shared-memory-lane.md): a
 * request at or over the threshold is written as a lane file and the `PipeCall` carries its
 * `LaneRef`; a `PipeResult` with a `LaneRef` is read (and its file removed). A full tmpfs (or any
 * failed write) sends the message inline with one warning per pool; a reference that cannot be
 * read is a `protocol` error of the call, never a hang or a wrong message.
 */
export class PipeLane {
  private warnedFallback = false;
  /** Unary responses' lane files are read into one reused buffer (`incoming`, `decoded`). */
  private readonly reads = new LaneReadBuffer();
  /** The reused buffer while a response read into it is being decoded. */
  private lent: Buffer | undefined;

  constructor(
    readonly lane: SharedMemoryLane,
    readonly settings: PipeLaneSettings,
    private readonly logger: Logger,
  ) {}

  /** The worker's environment: where the lane is and when the worker answers through it. */
  workerEnvironment(): Record<string, string> {
    return { PROCGRPC_LANE_DIR: this.lane.dir, PROCGRPC_LANE_THRESHOLD: String(this.settings.thresholdBytes), PROCGRPC_LANE_RESERVE: String(this.settings.reserveBytes) };
  }

  /** Whether a request of `bytes` is meant for the lane (before the free-space check of {@link outgoing}). */
  takes(bytes: number): boolean {
    return bytes >= this.settings.thresholdBytes;
  }

  /**
   * Writes `payload` (one buffer, or parts written back to back: `length` bytes in all) as a lane
   * file when it is large enough and there is room; undefined: send it inline.
   */
  outgoing(payload: Uint8Array | readonly Uint8Array[], length = (payload as Uint8Array).byteLength): LaneRef | undefined {
    if (!this.takes(length)) return undefined;
    let placement;
    try {
      placement = this.lane.placement(length, this.settings.thresholdBytes, this.settings.reserveBytes);
    } catch (err) {
      placement = { lane: false as const, reason: (err as Error).message };
    }
    if (!placement.lane) return this.fallBack(placement.reason);
    try {
      const ref = this.lane.write(payload);
      return { name: ref.name, length: ref.length, nonce: Number(ref.nonce), crc32: ref.crc32 };
    } catch (err) {
      return this.fallBack((err as Error).message);
    }
  }

  /** Reads (and removes) the lane file of `ref`. Throws a `LaneError`. */
  read(ref: LaneRef): Buffer {
    return this.lane.read(referenceOf(ref));
  }

  /**
   * The response bytes of a result: its payload, or its lane file's (removed), read into the
   * reused buffer; call {@link decoded} with what was decoded from them, before the next
   * `incoming`. Throws a `LaneError`.
   */
  incoming(res: PipeResult): Buffer {
    if (res.payloadRef === undefined) return res.payload; // decoding PipeResult copied it
    const ref = referenceOf(res.payloadRef);
    let buffer: Buffer | undefined;
    const bytes = this.lane.read(ref, (size) => (buffer = this.reads.take(size)));
    this.lent = buffer;
    return bytes;
  }

  /** The response of the last {@link incoming} was decoded into `value` (undefined: it failed to decode). */
  decoded(value: unknown): void {
    const lent = this.lent;
    this.lent = undefined;
    if (lent !== undefined) this.reads.giveBack(lent, value);
  }

  /** Removes a lane file nobody will read (a late answer, a settled call's request); quiet when it is gone. */
  discard(ref: LaneRef | undefined): void {
    if (ref === undefined) return;
    try {
      this.lane.discard(referenceOf(ref));
    } catch {
      // An invalid name names no file of ours.
    }
  }

  /** Removes the files worker process `pid` wrote (it exited; nobody will read them). */
  sweepWorker(pid: number | undefined): void {
    if (pid !== undefined) this.lane.sweep(workerLanePrefix(pid));
  }

  /** Removes the lane directory and everything in it (pool shutdown). */
  close(): void {
    this.lane.close();
  }

  private fallBack(reason: string): undefined {
    if (!this.warnedFallback) {
      this.warnedFallback = true;
      this.logger.warn({ laneDir: this.lane.dir, reason }, "shared-memory lane: a large message goes over the socket instead (logged once per pool)");
    }
    return undefined;
  }
}

/** Where a call on a lane-enabled pipeline left a request file, so it can be removed once the call settles. */
export class LaneRequestFiles {
  private readonly files = new Map<number, LaneRef>();

  constructor(private readonly lane: PipeLane) {}

  /** The request of call `callId` is in the lane file `ref`. */
  track(callId: number, ref: LaneRef): void {
    this.files.set(callId, ref);
  }

  /**
   * Call `callId` settled. `read`: the worker answered it OK, so it read (and removed) the
   * request file, and there is nothing to remove (no failing unlink, and no error built for it,
   * on every lane call). Otherwise the file is removed if it is still there: a call cancelled,
   * timed out or cut off before it ran, or answered without running (a worker stopping, a
   * deadline that passed first); one failing unlink when it was read after all.
   */
  release(callId: number, read = false): void {
    const ref = this.files.get(callId);
    if (ref === undefined) return;
    this.files.delete(callId);
    if (!read) this.lane.discard(ref);
  }
}

/** The `protocol` error of a call whose lane file could not be read, on either side (`reachedWorker` false: read back here before it was sent). */
export function laneProtocolError(err: unknown, facts: { method: string; workerId: string | undefined; requestId: string; idempotent: boolean }, reachedWorker = true): RpcError {
  const message = err instanceof Error ? err.message : String(err);
  return new RpcError({ code: Status.INTERNAL, details: `shared-memory lane: ${message}`, category: "protocol", cause: err, reachedWorker, ...facts });
}

/** The details of a result the worker failed because it could not read the request's lane file, else undefined. */
export function workerLaneFault(res: PipeResult): string | undefined {
  if (res.code !== Status.INTERNAL) return undefined;
  const marked = res.trailingMetadata.some((e: MetadataEntry) => e.key === LANE_ERROR_TRAILER);
  return marked ? res.details : undefined;
}

function referenceOf(ref: LaneRef): LaneReference {
  if (!Number.isSafeInteger(ref.nonce) || ref.nonce < 0) throw new LaneError("invalid-reference", `lane reference nonce ${ref.nonce} is not a 53-bit integer`);
  return ref.crc32 === undefined ? { name: ref.name, length: ref.length, nonce: BigInt(ref.nonce) } : { name: ref.name, length: ref.length, nonce: BigInt(ref.nonce), crc32: ref.crc32 };
}
