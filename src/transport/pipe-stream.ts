import type { Client } from "@grpc/grpc-js";
import { Metadata } from "../core/grpc-metadata";
import { PipeRequest, PipeResponse } from "../gen/procgrpc/internal/v1/pipeline";

const PIPE_PATH = "/procgrpc.internal.v1.PipelineService/Pipe";

/** An error of the carrier under a pipeline: a gRPC status (code a number) or a socket error. */
export interface PipeStreamError {
  code?: number | string;
  details?: string;
  message?: string;
}

/**
 * What a `Pipeline` sends its batches of calls on and reads batches of answers from: the
 * worker's `Pipe` gRPC stream (`grpcPipeStream`), or the socket pair the worker was spawned
 * with (`SocketPipeStream`). Both carry the same `PipeRequest`/`PipeResponse` messages; `end()`
 * half-closes (the worker answers what it has, then ends its side: `"end"`).
 */
export interface PipeStream {
  write(request: PipeRequest): void;
  end(): void;
  /** True once `end()` was called or the stream is gone. */
  readonly writableEnded: boolean;
  on(event: "data", listener: (response: PipeResponse) => void): this;
  on(event: "error", listener: (err: PipeStreamError) => void): this;
  on(event: "end", listener: () => void): this;
}

const serializeRequest = (req: PipeRequest): Buffer => {
  const bytes = PipeRequest.encode(req).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
};

/** The pipeline as a `procgrpc.internal.v1.PipelineService/Pipe` bidirectional stream on the worker's channel. */
export function grpcPipeStream(channel: Client): PipeStream {
  return channel.makeBidiStreamRequest(PIPE_PATH, serializeRequest, (b: Buffer) => PipeResponse.decode(b), new Metadata(), {});
}
