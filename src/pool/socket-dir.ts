import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createConnection } from "node:net";
import { sweepStaleLaneDirs } from "../transport/shared-memory-lane";
import { portable } from "./platform";

/** The longest Unix socket path Linux accepts (sun_path is 108 bytes including the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;
/** The longest on macOS and the BSDs (sun_path is 104 bytes including the NUL). */
export const MAX_SOCKET_PATH_BYTES_BSD = 103;

const SOCKET_PREFIX = "procgrpc-";
/** `procgrpc-<owner pid>-…`: a socket or default directory of a pool, named after its Node process. */
const OWNED_NAME = /^procgrpc-(\d+)-/;
/** A default socket directory: `procgrpc-<owner pid>-<mkdtemp suffix>`. */
const DEFAULT_DIR_NAME = /^procgrpc-(\d+)-[A-Za-z0-9]{6}$/;

/** Where a pool's sockets live, and whether the pool created (and so removes) the directory. */
export interface SocketDir {
  readonly path: string;
  readonly owned: boolean;
  socketPath(workerId: string, generation: number): string;
  /** Removes the pool's sockets, and the directory when the pool created it. */
  remove(): void;
}

/** The longest socket path this platform accepts (the portable limit with PROCGRPC_PORTABLE=1). */
export function maxSocketPathBytes(): number {
  return process.platform === "linux" && !portable() ? MAX_SOCKET_PATH_BYTES : MAX_SOCKET_PATH_BYTES_BSD;
}

/** Throws a clear error when `path` is too long to bind as a Unix socket on this platform. */
export function assertSocketPathFits(path: string): void {
  const bytes = Buffer.byteLength(path);
  const limit = maxSocketPathBytes();
  if (bytes > limit) {
    throw new RangeError(
      `WorkerPool: socket path is ${bytes} bytes, over the Unix limit of ${limit} on ${process.platform}: ${path}. ` +
        "Choose a shorter socketDir (for example under /tmp).",
    );
  }
}

/**
 * The socket file name for a worker: the Node process, the pool (a random tag, so that pools
 * sharing a directory, in one process or several, never meet), the worker and its generation,
 * which changes on every restart so a new worker never races an old file.
 */
export function socketFileName(pid: number, pool: string, workerId: string, generation: number): string {
  return `${SOCKET_PREFIX}${pid}-${pool}-${workerId}-${generation}.sock`;
}

/**
 * Prepares the socket directory: a fresh private one (mode 0700, `procgrpc-<pid>-XXXXXX` in the
 * OS temp dir) by default, or the given one. Validates that the longest socket path this pool
 * will use fits the platform's limit. Before creating a default directory, the directories of
 * dead pools (owner process gone) left in the temp dir are swept.
 */
export function prepareSocketDir(given: string | undefined, workers: number): SocketDir {
  const pool = randomBytes(3).toString("hex");
  if (!given) sweepDeadPoolDirs(tmpdir());
  const dir = given ? resolve(given) : mkdtempSync(join(tmpdir(), `${SOCKET_PREFIX}${process.pid}-`));
  const owned = !given;
  // Worst case name: the largest pid, worker id and a long generation counter.
  assertSocketPathFits(join(dir, socketFileName(4_194_304, pool, `w${workers - 1}`, 999_999)));
  if (given) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const created = new Set<string>();
  return {
    path: dir,
    owned,
    socketPath(workerId, generation) {
      const p = join(dir, socketFileName(process.pid, pool, workerId, generation));
      created.add(p);
      return p;
    },
    remove() {
      for (const p of created) {
        try {
          unlinkSync(p);
        } catch {
          // Already removed by the worker on its way out.
        }
      }
      if (owned) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** True while a process with this pid exists (EPERM: it does, as another user's). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the default socket directories of pools whose Node process is gone (it was killed
 * before it could, and its last worker could not either): their procgrpc sockets, then the
 * directory if nothing else is in it. Only directories of this user, named by procgrpc.
 */
export function sweepDeadPoolDirs(parent: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return removed;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const match = DEFAULT_DIR_NAME.exec(name);
    if (!match || processExists(Number(match[1]))) continue;
    const dir = join(parent, name);
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      for (const entry of readdirSync(dir)) {
        const p = join(dir, entry);
        if (entry.startsWith(SOCKET_PREFIX) && entry.endsWith(".sock") && lstatSync(p).isSocket()) unlinkSync(p);
      }
      sweepStaleLaneDirs(dir); // the shared-memory lane's directory, when /dev/shm was missing
      rmdirSync(dir); // fails, and keeps the directory, when anything else is in it
      removed.push(dir);
    } catch {
      // Raced with another sweeper or its last worker, or not empty: leave it.
    }
  }
  return removed;
}

/**
 * Removes procgrpc sockets in `dir` left by pools whose Node process is gone and that no process
 * listens on any more. Another pool's sockets, live or starting, are never touched: a socket
 * is only removed when its owner (the pid in its name) no longer exists.
 */
export async function removeStaleSockets(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const owner = OWNED_NAME.exec(name);
    if (!owner || !name.endsWith(".sock") || processExists(Number(owner[1]))) continue;
    const p = join(dir, name);
    try {
      if (!lstatSync(p).isSocket()) continue;
    } catch {
      continue;
    }
    if (!(await isListening(p))) {
      try {
        unlinkSync(p);
        removed.push(p);
      } catch {
        // Raced with its owner; nothing to do.
      }
    }
  }
  return removed;
}

/** True when something accepts connections on the Unix socket at `path`. */
export function isListening(path: string): Promise<boolean> {
  return new Promise((resolveListening) => {
    const sock = createConnection(path);
    sock.once("connect", () => {
      sock.destroy();
      resolveListening(true);
    });
    sock.once("error", () => resolveListening(false));
  });
}
