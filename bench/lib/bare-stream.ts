// The "bare gRPC stream, 1 message per call" floor (issue 15): one grpc-js bidi stream per server
// to bench/bare_stream_server.py (a bare grpc.aio handler, `async for` + `yield`). Each call is one
// stream message (8-byte id + payload), matched to its reply by id; no batching, no protobuf, no
// deadlines or metadata. It is what procgrpc's pipelined transport would cost with nothing of its own.
import { spawn } from "node:child_process";
import { Client, credentials, Metadata, type ChannelOptions, type ClientDuplexStream } from "@grpc/grpc-js";
import type { Call } from "./measure";
import { COMPARISON_SERVER_ENV, type PeerServer } from "./peer-clients";

/** The channel options procgrpc uses for its local workers (src/pool/worker-process.ts), so the floor is like for like. */
export const LOCAL_LIKE_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.enable_retries": 0,
  "grpc.enable_channelz": 0,
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
  "grpc.use_local_subchannel_pool": 1,
  "grpc-node.flow_control_window": 4 * 1024 * 1024,
};

/** Starts `python bare_stream_server.py <socket>` and waits for "ready". */
export async function startBareStreamServer(python: string, script: string, socket: string): Promise<PeerServer> {
  const child = spawn(python, [script, socket], { stdio: ["ignore", "pipe", "inherit"], env: COMPARISON_SERVER_ENV });
  await new Promise<void>((resolve, reject) => {
    // Wait for the server's own "ready" line (a wrapper such as py-spy may print before it).
    let seen = "";
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString();
      if (/^ready$/m.test(seen)) {
        child.stdout.off("data", onData);
        child.stdout.resume();
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.once("exit", (code) => reject(new Error(`bare stream server exited with ${code}`)));
  });
  return { pid: child.pid as number, socket, stop: () => child.kill("SIGKILL") };
}

const identity = (b: Buffer): Buffer => b;

/** One bidi stream per socket; calls round-robin over them. */
export async function bareStreamCall(sockets: readonly string[], payload: Buffer): Promise<{ call: Call; close: () => void }> {
  const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  const clients = sockets.map((s) => new Client(`unix:${s}`, credentials.createInsecure(), LOCAL_LIKE_CHANNEL_OPTIONS));
  const streams: ClientDuplexStream<Buffer, Buffer>[] = clients.map((c) => {
    const stream = c.makeBidiStreamRequest("/bench.bare.Bare/Echo", identity, identity, new Metadata());
    stream.on("data", (reply: Buffer) => {
      const id = Number(reply.readBigUInt64LE(0));
      const w = waiting.get(id);
      if (!w) return;
      waiting.delete(id);
      if (reply.length === payload.length + 8) w.resolve();
      else w.reject(new Error("bare stream: wrong reply"));
    });
    stream.on("error", (err: Error) => {
      for (const w of waiting.values()) w.reject(err);
      waiting.clear();
    });
    return stream;
  });
  // One copy of the payload into the message per call, as any framing (procgrpc's protobuf too) makes.
  let nextId = 0;
  const call: Call = () =>
    new Promise<void>((resolve, reject) => {
      const id = nextId++;
      const message = Buffer.allocUnsafe(8 + payload.length);
      message.writeBigUInt64LE(BigInt(id), 0);
      payload.copy(message, 8);
      waiting.set(id, { resolve, reject });
      streams[id % streams.length].write(message);
    });
  // One round trip before measuring, so that stream set-up is not in the first sample.
  await call();
  return {
    call,
    close: () => {
      for (const s of streams) s.end();
      for (const c of clients) c.close();
    },
  };
}
