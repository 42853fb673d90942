import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { PipeRequest, PipeResponse } from "../gen/procgrpc/internal/v1/pipeline";
import type { PipeStream, PipeStreamError } from "./pipe-stream";

/** Bytes of a frame's length prefix (little-endian uint32). */
const HEADER_BYTES = 4;
/** A frame writer that held a larger frame (its buffer at least that) is not kept for the next one. */
const KEPT_WRITER_MAX_BYTES = 1 << 20;
/** No protobuf message is longer (2 GiB - 1): a longer prefix is not one of ours. */
const MAX_FRAME_BYTES = 0x7fffffff;

/**
 * The pipeline on the socket pair a local worker was spawned with (its `PROCGRPC_PIPE_FD`):
 * each `PipeRequest` and `PipeResponse` is one frame, a 4-byte little-endian length and the
 * message. No HTTP/2 framing, flow-control windows or per-message gRPC bookkeeping under small
 * calls (docs/pipelined-call-costs.md); everything the pipeline means (statuses, metadata,
 * deadlines, cancellation, the lane's references) is in the messages, as on the gRPC stream.
 */
export class SocketPipeStream extends EventEmitter implements PipeStream {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** The length of the frame being read, or -1 while its prefix is incomplete. */
  private frameBytes = -1;
  private finished = false;
  private writer: BinaryWriter | undefined;
  private lastFrameBytes = 0;

  constructor(private readonly socket: Duplex) {
    super();
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("end", () => this.finish());
    socket.on("error", (err: NodeJS.ErrnoException) => this.fail({ code: err.code, message: err.message }));
    // Destroyed without an end or an error (the worker exited and its stdio was closed here).
    socket.on("close", () => this.finish());
  }

  get writableEnded(): boolean {
    return this.finished || this.socket.writableEnded || this.socket.destroyed;
  }

  write(request: PipeRequest): void {
    if (this.writableEnded) return;
    // The length prefix is a fixed32 (little-endian) written first and filled in once the
    // message is encoded behind it: one buffer, one write. One writer for every frame: a new
    // one starts small and grows (new memory) on each; `finish()` hands out a copy either way.
    let frame: Uint8Array;
    try {
      frame = PipeRequest.encode(request, this.frameWriter().fixed32(0)).finish();
    } catch (err) {
      this.writer = undefined; // left mid-message: never reused
      throw err;
    }
    this.lastFrameBytes = frame.byteLength;
    new DataView(frame.buffer, frame.byteOffset, HEADER_BYTES).setUint32(0, frame.byteLength - HEADER_BYTES, true);
    this.socket.write(frame);
  }

  end(): void {
    if (!this.socket.writableEnded && !this.socket.destroyed) this.socket.end();
  }

  /** The writer frames are encoded with (a new one after a frame larger than {@link KEPT_WRITER_MAX_BYTES}). */
  private frameWriter(): BinaryWriter {
    if (this.writer === undefined || this.lastFrameBytes > KEPT_WRITER_MAX_BYTES) this.writer = new BinaryWriter();
    return this.writer;
  }

  private receive(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.finished) {
      if (this.frameBytes < 0) {
        if (this.buffered < HEADER_BYTES) return;
        this.frameBytes = this.take(HEADER_BYTES).readUInt32LE(0);
        if (this.frameBytes > MAX_FRAME_BYTES) return this.corrupt(`a frame of ${this.frameBytes} bytes, longer than any protobuf message`);
      }
      if (this.buffered < this.frameBytes) return;
      const body = this.take(this.frameBytes);
      this.frameBytes = -1;
      let response: PipeResponse;
      try {
        response = PipeResponse.decode(body);
      } catch (err) {
        return this.corrupt(`a frame that is not a PipeResponse (${(err as Error).message})`);
      }
      this.emit("data", response);
    }
  }

  /** The next `n` buffered bytes: a view of one chunk when they lie in it, else one copy. */
  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    this.buffered -= n;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0] as Buffer;
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    return out;
  }

  /** The worker sent something else than frames of `PipeResponse`: the pipe is closed. */
  private corrupt(what: string): void {
    this.fail({ message: `the worker's pipe carried ${what}` });
    this.socket.destroy();
  }

  private fail(err: PipeStreamError): void {
    if (this.finished) return;
    this.finished = true;
    this.emit("error", err);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.emit("end");
  }
}
