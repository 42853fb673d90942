import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { isListening } from "../pool/socket-dir";
import type { WorkerPool } from "../pool/worker-pool";

/** The admin commands `procgrpc serve` reads from stdin and from its `--control` socket. */
export const ADMIN_COMMANDS = `Admin commands (one a line, on stdin or on the --control socket):
  status                     Workers, spares, queue, scaling, circuits, switched-off targets (JSON)
  off <method|service>       Kill switch: calls fail fast with UNAVAILABLE without reaching Python
                             (also direct calls on the workers' sockets; replies once all refuse)
  on <method|service>        Switch it back on
  isolate method <path>      Hold a method's circuit open (needs the method breaker)
  isolate worker <id>        Hold a worker's circuit open: it gets no calls (needs the worker breaker)
  close method <path>        Close a circuit again (also: close worker <id>)
  recycle <id>               Replace a worker gracefully (new one SERVING first)
  drain <id>                 Take a worker out of the pool (in-flight calls finish)
  help                       This list`;

/** The answer to one admin command. */
export interface AdminReply {
  ok: boolean;
  command: string;
  /** What the command returned (`status`: the pool's health). */
  result?: unknown;
  error?: string;
}

/**
 * Runs one admin command line against `pool`. Never throws: a bad command or a refusal (an
 * unknown worker, no breaker) is a reply with `ok: false` and the reason.
 */
export async function runAdminCommand(pool: WorkerPool, line: string): Promise<AdminReply> {
  const words = line.trim().split(/\s+/).filter(Boolean);
  const command = words.join(" ");
  const [verb, a, b] = words;
  const done = (result?: unknown): AdminReply => ({ ok: true, command, ...(result === undefined ? {} : { result }) });
  const circuit = (kind: string | undefined, key: string | undefined): { method: string } | { worker: string } => {
    if (!key || (kind !== "method" && kind !== "worker")) throw new Error(`usage: ${verb} method <path> | ${verb} worker <id>`);
    return kind === "method" ? { method: key } : { worker: key };
  };
  const one = (arg: string | undefined, what: string): string => {
    if (!arg || words.length !== 2) throw new Error(`usage: ${verb} <${what}>`);
    return arg;
  };
  try {
    switch (verb) {
      case "status":
        return done(pool.health());
      case "off":
        // Replies once the workers refuse it too (clients calling their sockets directly).
        await pool.switchOff(one(a, "method|service"));
        return done({ switchedOff: pool.health().switchedOff });
      case "on":
        await pool.switchOn(one(a, "method|service"));
        return done({ switchedOff: pool.health().switchedOff });
      case "isolate":
        pool.isolateCircuit(circuit(a, b));
        return done(pool.health().circuits);
      case "close":
        pool.closeCircuit(circuit(a, b));
        return done(pool.health().circuits);
      case "recycle":
        await pool.recycle(one(a, "worker id"));
        return done();
      case "drain":
        await pool.drain(one(a, "worker id"));
        return done();
      case "help":
        return done(ADMIN_COMMANDS);
      default:
        throw new Error(verb ? `unknown command '${verb}' (try: help)` : "empty command (try: help)");
    }
  } catch (e) {
    return { ok: false, command, error: (e as Error).message };
  }
}

/** A running control endpoint. */
export interface ControlSocket {
  readonly path: string;
  /** Stops listening, ends open connections and removes the socket file. */
  close(): Promise<void>;
}

/**
 * Listens on a Unix socket (mode 0600: only this user) for admin command lines; each gets one
 * JSON line back (`AdminReply`). A stale socket file at `path` is replaced; a live one or any
 * other file is an error. Nothing listens on a network port.
 */
export async function startControlSocket(path: string, handle: (line: string) => Promise<AdminReply>): Promise<ControlSocket> {
  let existing;
  try {
    existing = lstatSync(path);
  } catch {
    existing = undefined;
  }
  if (existing) {
    if (!existing.isSocket()) throw new Error(`--control ${path}: a file that is not a socket is in the way`);
    if (await isListening(path)) throw new Error(`--control ${path}: another process is listening there`);
    unlinkSync(path);
  }
  const connections = new Set<Socket>();
  const server: Server = createServer((socket) => {
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
    socket.on("error", () => undefined);
    // One command at a time per connection, answered in order.
    let chain = Promise.resolve();
    createInterface({ input: socket, crlfDelay: Infinity }).on("line", (line) => {
      if (!line.trim()) return;
      chain = chain.then(async () => {
        const reply = await handle(line);
        if (!socket.destroyed) socket.write(`${JSON.stringify(reply)}\n`);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return {
    path,
    close: async () => {
      for (const c of connections) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      try {
        unlinkSync(path);
      } catch {
        // Already gone (server.close removes it on most platforms).
      }
    },
  };
}

/** Reads admin command lines from `input` (stdin) until it ends; returns a function that stops reading. */
export function readAdminLines(input: Readable, handle: (line: string) => Promise<void>): () => void {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let chain = Promise.resolve();
  lines.on("line", (line) => {
    if (line.trim()) chain = chain.then(() => handle(line));
  });
  return () => {
    lines.close();
    if ("destroy" in input && typeof input.destroy === "function") input.destroy();
  };
}
