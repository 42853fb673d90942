import { createServer as createNetServer, type Server } from "node:net";
import { constants as h2, createServer as createHttp2Server, type Http2Server } from "node:http2";
import { execFileSync } from "node:child_process";
import { RemotePool, silentLogger, type CallOptions, type UnaryMethod } from "../../src";
import { PYTHON } from "./env";

/**
 * Runs one call through the same call path as a pool's (a one-target `RemotePool` on the
 * socket: the same classification, metadata and deadline handling), over a fresh connection to
 * `socketPath`. Used for peers a pool cannot spawn: a deleted socket, a refused one, a server
 * that is not gRPC.
 */
export async function callOverFreshConnection<Res>(socketPath: string, method: UnaryMethod<unknown, Res>, request: unknown, options?: CallOptions): Promise<Res> {
  const pool = new RemotePool({ targets: [`unix:${socketPath}`], checkOnStart: false, healthCheckIntervalMs: 0, logger: silentLogger });
  await pool.start();
  try {
    return await pool.unary(method, request, { timeoutMs: 5000, ...options });
  } finally {
    await pool.shutdown({ graceMs: 0 });
  }
}

/** A Unix-socket server that answers every connection with bytes that are not HTTP/2. */
export async function garbagePeer(socketPath: string): Promise<Server> {
  const server = createNetServer((socket) => {
    socket.on("error", () => undefined);
    socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nthis is not gRPC\n");
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return server;
}

/**
 * An HTTP/2 server that looks like gRPC but breaks the protocol, chosen by the method name:
 * `BadStatus` sends `grpc-status: 42`, `NanStatus` sends `grpc-status: abc`, `Reset` resets the
 * stream without a status, `NotFound` answers HTTP 404.
 */
export async function brokenHttp2Peer(socketPath: string): Promise<Http2Server> {
  const server = createHttp2Server();
  server.on("stream", (stream, headers) => {
    stream.on("error", () => undefined);
    const method = String(headers[":path"]).split("/").pop();
    const grpcHeaders = { ":status": 200, "content-type": "application/grpc" };
    if (method === "BadStatus" || method === "NanStatus") {
      stream.respond(grpcHeaders, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": method === "BadStatus" ? "42" : "abc", "grpc-message": "made up" }));
      stream.end();
    } else if (method === "Reset") {
      stream.respond(grpcHeaders);
      stream.close(h2.NGHTTP2_NO_ERROR);
    } else {
      stream.respond({ ":status": 404 });
      stream.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return server;
}

/** Leaves a socket file at `socketPath` that nothing listens on: connecting is refused. */
export function refusingSocket(socketPath: string): void {
  execFileSync(PYTHON, ["-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(socketPath)})`]);
}
