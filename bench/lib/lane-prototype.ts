// Shared-memory lane prototype, Node side (issue 15 §1): the bare gRPC stream of bare-stream.ts,
// but the payload travels as a file in a private /dev/shm directory and the stream message carries
// only a reference (name, length, nonce): src/transport/shared-memory-lane.ts on this side,
// procgrpc._shm in bench/lane/lane_server.py on the other. Payloads below `thresholdBytes` go inline.
import { spawn } from "node:child_process";
import { Client, credentials, Metadata, type ClientDuplexStream } from "@grpc/grpc-js";
import { SharedMemoryLane } from "../../src/transport/shared-memory-lane";
import { LOCAL_LIKE_CHANNEL_OPTIONS } from "./bare-stream";
import type { Call } from "./measure";
import type { PeerServer } from "./peer-clients";

const identity = (b: Buffer): Buffer => b;
const REF_BYTES = 8 + 1 + 8 + 8;

/** A started lane prototype server and the lane directory it shares with this process. */
export interface LaneServer extends PeerServer {
  lane: SharedMemoryLane;
}

/** Starts `python lane_server.py <socket> <laneDir>` with a fresh lane directory. */
export async function startLaneServer(python: string, script: string, socket: string, fallbackDir: string): Promise<LaneServer> {
  const lane = SharedMemoryLane.open({ fallbackDir, writerPrefix: "n" });
  const child = spawn(python, [script, socket, lane.dir], { stdio: ["ignore", "pipe", "inherit"] });
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
    child.once("exit", (code) => reject(new Error(`lane server exited with ${code}`)));
  });
  return {
    pid: child.pid as number,
    socket,
    lane,
    stop: () => {
      child.kill("SIGKILL");
      lane.close();
    },
  };
}

/** Calls over one stream per server; each payload at or above `thresholdBytes` takes the lane both ways. */
export async function laneCall(servers: readonly LaneServer[], payload: Buffer, thresholdBytes = 0): Promise<{ call: Call; close: () => void }> {
  const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void; lane: SharedMemoryLane }>();
  const clients = servers.map((s) => new Client(`unix:${s.socket}`, credentials.createInsecure(), LOCAL_LIKE_CHANNEL_OPTIONS));
  const streams: ClientDuplexStream<Buffer, Buffer>[] = clients.map((c) => {
    const stream = c.makeBidiStreamRequest("/bench.lane.Lane/Echo", identity, identity, new Metadata());
    stream.on("data", (reply: Buffer) => {
      const id = Number(reply.readBigUInt64LE(0));
      const w = waiting.get(id);
      if (!w) return;
      waiting.delete(id);
      const kind = reply[8];
      try {
        let length: number;
        if (kind === 0) length = reply.length - 9;
        else if (kind === 1) {
          const ref = { nonce: reply.readBigUInt64LE(9), length: Number(reply.readBigUInt64LE(17)), name: reply.toString("latin1", REF_BYTES) };
          length = w.lane.read(ref).length;
        } else throw new Error(`lane server: ${reply.toString("utf8", 9)}`);
        if (length === payload.length) w.resolve();
        else w.reject(new Error("lane prototype: wrong reply"));
      } catch (err) {
        w.reject(err as Error);
      }
    });
    stream.on("error", (err: Error) => {
      for (const w of waiting.values()) w.reject(err);
      waiting.clear();
    });
    return stream;
  });
  let nextId = 0;
  const call: Call = () =>
    new Promise<void>((resolve, reject) => {
      const id = nextId++;
      const n = id % streams.length;
      const lane = servers[n].lane;
      let message: Buffer;
      if (payload.length >= thresholdBytes) {
        const ref = lane.write(payload);
        const name = Buffer.from(ref.name, "latin1");
        message = Buffer.allocUnsafe(REF_BYTES + name.length);
        message.writeBigUInt64LE(BigInt(id), 0);
        message[8] = 1;
        message.writeBigUInt64LE(ref.nonce, 9);
        message.writeBigUInt64LE(BigInt(ref.length), 17);
        name.copy(message, REF_BYTES);
      } else {
        message = Buffer.allocUnsafe(9 + payload.length);
        message.writeBigUInt64LE(BigInt(id), 0);
        message[8] = 0;
        payload.copy(message, 9);
      }
      waiting.set(id, { resolve, reject, lane });
      streams[n].write(message);
    });
  await call();
  return {
    call,
    close: () => {
      for (const s of streams) s.end();
      for (const c of clients) c.close();
    },
  };
}
