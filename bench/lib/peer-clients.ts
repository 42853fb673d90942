// Clients for the comparison servers in bench/peer_servers.py (not procgrpc): pyproc-style
// length-prefixed JSON with base64 payloads, and the raw length-prefixed binary socket floor.
import { spawn, type ChildProcess } from "node:child_process";
import { connect, type Socket } from "node:net";
import type { Call } from "./measure";

/** A started comparison server. */
export interface PeerServer {
  pid: number;
  socket: string;
  stop(): void;
}

/**
 * The environment of every comparison server: glibc's heap set as procgrpc's worker sets its own
 * (python-worker/procgrpc/_process/malloc_tuning.py: 32 MiB mmap threshold, 128 MiB trim
 * threshold). Untuned, a Python server takes a fresh mmap for each buffer of 128 KiB or more and
 * pays its page faults on every call, until one message of 16 MiB raises glibc's dynamic
 * thresholds: the socket floor's 1 MiB echo went from ~1.0 ms to ~0.67 ms after one such
 * message here. A floor that pays for page faults procgrpc's worker avoids is not the floor.
 */
export const COMPARISON_SERVER_ENV: NodeJS.ProcessEnv = { ...process.env, MALLOC_MMAP_THRESHOLD_: String(32 << 20), MALLOC_TRIM_THRESHOLD_: String(128 << 20) };

/** Starts `python peer_servers.py <kind> <socket>` and waits for "ready". */
export async function startPeerServer(python: string, script: string, kind: "json" | "binary", socket: string): Promise<PeerServer> {
  const child: ChildProcess = spawn(python, [script, kind, socket], { stdio: ["ignore", "pipe", "inherit"], env: COMPARISON_SERVER_ENV });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`${kind} peer server exited with ${code}`)));
  });
  return { pid: child.pid as number, socket, stop: () => child.kill("SIGKILL") };
}

/** Frames are answered in order on one connection, so a FIFO of waiters matches replies to calls. */
class FramedConnection {
  private readonly waiters: ((body: Buffer) => void)[] = [];
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;

  private constructor(private readonly sock: Socket) {
    sock.on("data", (chunk: Buffer) => this.onData(chunk));
  }

  static open(path: string): Promise<FramedConnection> {
    return new Promise((resolve, reject) => {
      const sock = connect(path, () => resolve(new FramedConnection(sock)));
      sock.once("error", reject);
    });
  }

  send(body: Buffer): Promise<Buffer> {
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(body.length, 0);
    this.sock.write(header);
    this.sock.write(body);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    for (;;) {
      if (this.bufferedBytes < 4) return;
      if (this.buffered[0].length < 4) this.buffered = [Buffer.concat(this.buffered)];
      const length = this.buffered[0].readUInt32BE(0);
      // Join the chunks only once the whole frame is here: joining on every chunk would copy a
      // 64 MiB reply ~1,000 times (quadratic), and the floor would measure this client.
      if (this.bufferedBytes < 4 + length) return;
      const all = this.buffered.length === 1 ? this.buffered[0] : Buffer.concat(this.buffered, this.bufferedBytes);
      const body = all.subarray(4, 4 + length);
      const rest = all.subarray(4 + length);
      this.buffered = rest.length > 0 ? [rest] : [];
      this.bufferedBytes = rest.length;
      (this.waiters.shift() as (b: Buffer) => void)(body);
    }
  }
}

/** pyproc's design: JSON with a base64 payload, one connection per server, calls round-robin. */
export async function jsonPeerCall(sockets: readonly string[], payload: Buffer): Promise<{ call: Call; close: () => void }> {
  const conns = await Promise.all(sockets.map((s) => FramedConnection.open(s)));
  let id = 0;
  return {
    call: async () => {
      const n = id++;
      const reply = JSON.parse((await conns[n % conns.length].send(Buffer.from(JSON.stringify({ id: n, method: "echo", payload: payload.toString("base64") })))).toString()) as { id: number; payload: string };
      if (reply.id !== n || Buffer.from(reply.payload, "base64").length !== payload.length) throw new Error("json peer: wrong reply");
    },
    close: () => conns.forEach((c) => c.close()),
  };
}

/** The socket floor: raw length-prefixed bytes echoed back. */
export async function binaryPeerCall(sockets: readonly string[], payload: Buffer): Promise<{ call: Call; close: () => void }> {
  const conns = await Promise.all(sockets.map((s) => FramedConnection.open(s)));
  let id = 0;
  return {
    call: async () => {
      const reply = await conns[id++ % conns.length].send(payload);
      if (reply.length !== payload.length) throw new Error("binary peer: wrong reply");
    },
    close: () => conns.forEach((c) => c.close()),
  };
}
