import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createConnection } from "node:net";

/** The longest Unix socket path Linux accepts (sun_path is 108 bytes including the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

const SOCKET_PREFIX = "procgrpc-";

/** Where a pool's sockets live, and whether the pool created (and so removes) the directory. */
export interface SocketDir {
  readonly path: string;
  readonly owned: boolean;
  socketPath(workerId: string, generation: number): string;
  /** Removes the pool's sockets, and the directory when the pool created it. */
  remove(): void;
}

/** Throws a clear error when `path` is too long to bind as a Unix socket. */
export function assertSocketPathFits(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new RangeError(
      `WorkerPool: socket path is ${bytes} bytes, over the Unix limit of ${MAX_SOCKET_PATH_BYTES}: ${path}. ` +
        "Choose a shorter socketDir (for example under /tmp).",
    );
  }
}

/** The socket file name for a worker; the generation changes on every restart so a new worker never races an old file. */
export function socketFileName(pid: number, workerId: string, generation: number): string {
  return `${SOCKET_PREFIX}${pid}-${workerId}-${generation}.sock`;
}

/**
 * Prepares the socket directory: a fresh private one (mode 0700) by default, or the given one.
 * Validates at construction that the longest socket path this pool will use fits the Unix limit.
 */
export function prepareSocketDir(given: string | undefined, workers: number): SocketDir {
  const dir = given ? resolve(given) : mkdtempSync(join(tmpdir(), "procgrpc-"));
  const owned = !given;
  // Worst case name: the largest worker id and a long generation counter.
  assertSocketPathFits(join(dir, socketFileName(4_194_304, `w${workers - 1}`, 999_999)));
  if (given) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const created = new Set<string>();
  return {
    path: dir,
    owned,
    socketPath(workerId, generation) {
      const p = join(dir, socketFileName(process.pid, workerId, generation));
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

/**
 * Removes procgrpc sockets in `dir` that no process listens on any more (left by a pool whose
 * Node process was killed). Live sockets are left alone.
 */
export async function removeStaleSockets(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(SOCKET_PREFIX) || !name.endsWith(".sock")) continue;
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

function isListening(path: string): Promise<boolean> {
  return new Promise((resolveListening) => {
    const sock = createConnection(path);
    sock.once("connect", () => {
      sock.destroy();
      resolveListening(true);
    });
    sock.once("error", () => resolveListening(false));
  });
}
