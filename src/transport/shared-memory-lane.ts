import { randomBytes } from "node:crypto";
import { closeSync, constants, fstatSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readSync, renameSync, rmSync, statfsSync, statSync, unlinkSync, writevSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";

/**
 * The shared-memory lane's file primitives (issue 15 §1): a large serialized message travels as a
 * file in a private memory-backed directory, and the gRPC message on the pipe carries only a
 * {@link LaneReference}. Pure file logic: no gRPC here. The Python side is
 * `python-worker/procgrpc/_shm.py`; both write and read the same file layout:
 *
 * ```
 * offset 0   8 bytes  magic "pglane02"
 * offset 8   8 bytes  nonce, u64 little-endian (random per file; also in the reference)
 * offset 16  8 bytes  payload length, u64 little-endian
 * offset 24  8 bytes  payload start S, u64 little-endian (32 ≤ S < 32 + LANE_MAX_PADDING)
 * offset 32  …        zero padding up to S
 * offset S   …        payload (the file is S + length bytes)
 * ```
 *
 * Why a payload start: on the AMD EPYC machine this was measured on, the kernel's copy between
 * a process's memory and a tmpfs page takes ~5× as long when the destination runs 1–15 bytes
 * ahead of the source within a 4 KiB page (0.41 ms against 0.08 ms per MiB; reads and writes
 * alike; user-space memcpy has no such case). Memory from malloc is 16-byte aligned, so a writer
 * places its largest part at a file offset congruent to the part's own offset mod 16, and
 * readers read into 16-aligned memory (see docs/shared-memory-lane.md, "Alignment").
 *
 * The reader opens the file and removes its name at once (the open descriptor keeps it readable,
 * so a reader that dies mid-read leaks nothing), checks size and header against the reference,
 * and reads the payload. Files are created 0600 with O_EXCL|O_NOFOLLOW in a 0700 directory.
 *
 * Spare files: a reader keeps up to {@link MAX_SPARE_FILES} files it read ({@link
 * SPARE_FILES_MAX_BYTES} in all) by renaming them to a spare name of its own instead of
 * unlinking them, and its next large message is written over one of them and renamed to a new
 * message name. A new tmpfs file costs its pages' allocation and release on every message
 * (~0.27 ms per MiB here, against ~0.1 ms to rewrite pages a file already has), which is what
 * keeps the files in circulation between the two sides. Spares carry the keeper's prefix, so
 * they are swept with its files; this side drops its own after {@link SPARE_IDLE_MS} without
 * a large message.
 */

/** Bytes of the header at the start of every lane file (the payload starts at or after it). */
export const LANE_HEADER_BYTES = 32;
/** The payload starts fewer than this many bytes after the header. */
export const LANE_MAX_PADDING = 64;
/**
 * Where this side's payloads start when their largest part is 16-aligned: 48, not 32, because a
 * worker reads into a new `bytes` object whose data sits 48 bytes into its page (a glibc mmap
 * chunk's 16-byte header, CPython's 32-byte bytes header), and 33–47 would put it 1–15 ahead.
 * A multiple of 16: {@link payloadStart} adds the part's own offset mod 16 to it.
 */
const PAYLOAD_START_BASE = 48;
/** How many read files one side keeps to write its next messages into. */
export const MAX_SPARE_FILES = 2;
/** The most bytes of spare files one side keeps (a larger file is unlinked when read). */
export const SPARE_FILES_MAX_BYTES = 32 << 20;
/** Spare files are dropped after this long without a lane message. */
export const SPARE_IDLE_MS = 1000;
/** The names of spare files, after the writer prefix. */
const SPARE_MARK = "-spare-";
const MAGIC = Buffer.from("pglane02", "latin1");
/** Names a peer may reference: no separators, no dots, bounded length (a reference never escapes the directory). */
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Lane directories are `procgrpc-lane-<pid>-<random>`: the pid lets a later start sweep a crashed pool's directory. */
const DIR_PREFIX = "procgrpc-lane-";
const DIR_PATTERN = /^procgrpc-lane-(\d+)-[A-Za-z0-9]+$/;
/** Nonces are 53 bits: exact as a JavaScript number on the wire. */
const NONCE_MASK = (1n << 53n) - 1n;
/** statfs f_type of tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;

/** What the message on the pipe carries instead of the payload. */
export interface LaneReference {
  /** The file's name inside the lane directory. */
  readonly name: string;
  /** Payload length in bytes (the file is its header and padding longer). */
  readonly length: number;
  /** Random per file, also in the file's header: a reference can never read another message's file. */
  readonly nonce: bigint;
  /** CRC-32 of the payload when the writer computed one (see docs/shared-memory-lane.md: off by default). */
  readonly crc32?: number;
}

/** Why a lane operation failed; `missing`, `truncated` and `mismatch` are protocol errors of the call. */
export type LaneErrorKind = "missing" | "truncated" | "mismatch" | "invalid-reference" | "no-space" | "io";

/** A lane file could not be written or read. Never a hang: every failure is one of these, at once. */
export class LaneError extends Error {
  override readonly name = "LaneError";
  constructor(
    readonly kind: LaneErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options of {@link SharedMemoryLane.open}. */
export interface LaneOptions {
  /** Where the lane directory is created: `/dev/shm` when it is a usable directory, else `fallbackDir`. */
  baseDir?: string;
  /** Used when `baseDir` is missing or not writable (the pool's socket directory, typically). */
  fallbackDir: string;
  /** Prefix of the names this side writes (e.g. "n" for Node, "w1" for worker 1), so a sweep can target one writer. */
  writerPrefix?: string;
}

/** Where {@link SharedMemoryLane.placement} decided a message goes. */
export type Placement = { lane: true } | { lane: false; reason: string };

/** Node's `zlib.crc32`, where this Node has it. */
const zlibCrc32 = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;

/** CRC-32 (zlib's polynomial) without a native addon: `zlib.crc32` where Node has it (≥ 20.15, ≥ 22.2). */
export function laneCrc32(data: Uint8Array): number | undefined {
  return zlibCrc32 ? zlibCrc32(data) >>> 0 : undefined;
}

/** Random bytes for many files from one `randomBytes` call: a getrandom per file cost more than the rest of a small write. */
class RandomPool {
  private pool = Buffer.alloc(0);
  private offset = 0;

  constructor(private readonly chunk: number) {}

  /** `chunk` fresh random bytes (a view: read them before the next call). */
  take(): Buffer {
    if (this.offset + this.chunk > this.pool.length) {
      this.pool = randomBytes(this.chunk * 256);
      this.offset = 0;
    }
    const bytes = this.pool.subarray(this.offset, this.offset + this.chunk);
    this.offset += this.chunk;
    return bytes;
  }
}

function isUsableDir(path: string): boolean {
  try {
    // Creating the private directory is the real test (a read-only mount fails there).
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Whether `name` is a spare file (kept to be rewritten), not a message. */
export function isSpareFileName(name: string): boolean {
  return name.includes(SPARE_MARK);
}

/** A file this side read and kept, open, to write its next message into. */
interface SpareFile {
  readonly fd: number;
  readonly path: string;
  readonly size: number;
}

/** One side's view of a lane directory: write payloads as files, read (and remove) referenced files. */
export class SharedMemoryLane {
  private seq = 0;
  private readonly random = new RandomPool(14);
  private readonly spares: SpareFile[] = [];
  private spareBytes = 0;
  private lastUse = 0;
  private idleRelease: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    /** The private 0700 directory holding this lane's files. */
    readonly dir: string,
    /** True when the directory is on tmpfs (memory speed); false on a disk-backed fallback. */
    readonly memoryBacked: boolean,
    private readonly writerPrefix: string,
    /** True when this object created the directory (and `close` removes it). */
    private readonly owned: boolean,
  ) {
    if (!NAME_PATTERN.test(writerPrefix)) throw new TypeError(`lane writerPrefix must match ${NAME_PATTERN}, got ${JSON.stringify(writerPrefix)}`);
  }

  /**
   * Creates a private 0700 directory `procgrpc-lane-<pid>-<random>` under `baseDir` (default
   * `/dev/shm`) or, when that is not usable, under `fallbackDir`.
   */
  static open(options: LaneOptions): SharedMemoryLane {
    const candidates = [options.baseDir ?? "/dev/shm", options.fallbackDir];
    const errors: string[] = [];
    for (const base of candidates) {
      if (!isUsableDir(base)) {
        errors.push(`${base}: not a directory`);
        continue;
      }
      try {
        const dir = mkdtempSync(join(base, `${DIR_PREFIX}${process.pid}-`)); // mkdtemp creates it 0700
        return new SharedMemoryLane(dir, isTmpfs(dir), options.writerPrefix ?? "n", true);
      } catch (err) {
        errors.push(`${base}: ${(err as Error).message}`);
      }
    }
    throw new LaneError("io", `could not create a lane directory (${errors.join("; ")})`);
  }

  /** Uses a directory another side created (the worker's view; the directory is not removed by `close`). */
  static attach(dir: string, writerPrefix: string): SharedMemoryLane {
    const st = statSync(dir);
    if (!st.isDirectory()) throw new LaneError("io", `lane directory ${dir} is not a directory`);
    if ((st.mode & 0o077) !== 0) throw new LaneError("io", `lane directory ${dir} is accessible to others (mode ${(st.mode & 0o777).toString(8)}); expected 0700`);
    return new SharedMemoryLane(dir, isTmpfs(dir), writerPrefix, false);
  }

  /** Bytes the directory's filesystem can still take (for an unprivileged writer). */
  freeBytes(): number {
    const s = statfsSync(this.dir);
    return Number(s.bavail) * Number(s.bsize);
  }

  /**
   * Whether a payload of `bytes` should take the lane: only on a memory-backed directory, only
   * above `thresholdBytes`, and only while `reserveBytes` would remain free afterwards (a full
   * tmpfs sends the message over the socket instead of failing the call).
   */
  placement(bytes: number, thresholdBytes: number, reserveBytes: number): Placement {
    if (bytes < thresholdBytes) return { lane: false, reason: `below the lane threshold (${bytes} < ${thresholdBytes} bytes)` };
    if (!this.memoryBacked) return { lane: false, reason: `${this.dir} is not memory-backed` };
    const free = this.freeBytes();
    if (free - bytes - LANE_HEADER_BYTES - LANE_MAX_PADDING < reserveBytes) return { lane: false, reason: `${this.dir} has ${free} bytes free; ${bytes} would leave less than the ${reserveBytes}-byte reserve` };
    return { lane: true };
  }

  /**
   * Writes `payload` (one buffer, or several written back to back without concatenation) as a
   * new 0600 file and returns its reference. A failed write (e.g. ENOSPC on a full tmpfs) removes
   * the partial file and throws a {@link LaneError} of kind `no-space` or `io`.
   */
  write(payload: Uint8Array | readonly Uint8Array[], options: { crc32?: boolean } = {}): LaneReference {
    const parts = payload instanceof Uint8Array ? [payload] : payload;
    let length = 0;
    for (const p of parts) length += p.byteLength;
    // 53 random bits: the reference carries it as a protobuf uint64, a JavaScript number in ts-proto.
    const random = this.random.take();
    const nonce = random.readBigUInt64LE(0) & NONCE_MASK;
    const name = `${this.writerPrefix}-${(this.seq++).toString(36)}-${random.toString("hex", 8, 14)}`;
    const start = payloadStart(parts);
    const header = Buffer.alloc(start); // zeroed: the padding after the header
    MAGIC.copy(header, 0);
    header.writeBigUInt64LE(nonce, 8);
    header.writeBigUInt64LE(BigInt(length), 16);
    header.writeBigUInt64LE(BigInt(start), 24);
    const path = join(this.dir, name);
    const crc = options.crc32 ? crcOf(parts) : undefined;
    const ref: LaneReference = crc === undefined ? { name, length, nonce } : { name, length, nonce, crc32: crc };
    if (this.rewriteSpare(path, [header, ...parts], start + length)) return ref;
    let fd: number;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw new LaneError(laneErrorKind(err), `could not create lane file ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      writeAll(fd, [header, ...parts], start + length);
    } catch (err) {
      closeSync(fd);
      unlinkQuietly(path);
      throw new LaneError(laneErrorKind(err), `could not write ${length} bytes to lane file ${path}: ${(err as Error).message}`, { cause: err });
    }
    closeSync(fd);
    return ref;
  }

  /**
   * Writes a message file's bytes over a spare file and gives it the message's name; false when
   * there is no spare, or it failed (it is then dropped, and a new file is written instead).
   */
  private rewriteSpare(path: string, parts: readonly Uint8Array[], total: number): boolean {
    const spare = this.spares.pop();
    if (spare === undefined) return false;
    this.spareBytes -= spare.size;
    this.touch();
    try {
      writeAll(spare.fd, parts, total, 0);
      if (spare.size > total) ftruncateSync(spare.fd, total);
      closeSync(spare.fd);
    } catch {
      closeQuietly(spare.fd);
      unlinkQuietly(spare.path);
      return false;
    }
    try {
      renameSync(spare.path, path);
      return true;
    } catch {
      unlinkQuietly(spare.path); // swept from under us: write a new file
      return false;
    }
  }

  /** Renames the file being read to a spare name when one more spare of `size` bytes fits; its new path, or undefined (the caller unlinks it). */
  private renameToSpare(path: string, size: number): string | undefined {
    if (this.spares.length >= MAX_SPARE_FILES || this.spareBytes + size > SPARE_FILES_MAX_BYTES) return undefined;
    const bytes = this.random.take();
    const sparePath = join(this.dir, `${this.writerPrefix}${SPARE_MARK}${(this.seq++).toString(36)}-${bytes.toString("hex", 8, 14)}`);
    try {
      renameSync(path, sparePath);
    } catch {
      return undefined; // discarded by its writer meanwhile: nothing to keep
    }
    return sparePath;
  }

  /** Keeps a file read to its end (open as `fd`) as a spare: listed only once read, as in the worker. */
  private keepSpare(spare: SpareFile): void {
    this.spares.push(spare);
    this.spareBytes += spare.size;
    this.touch();
  }

  /** Closes and removes the spare files. */
  dropSpares(): void {
    for (const spare of this.spares.splice(0)) {
      closeQuietly(spare.fd);
      unlinkQuietly(spare.path);
    }
    this.spareBytes = 0;
    if (this.idleRelease !== undefined) clearTimeout(this.idleRelease);
    this.idleRelease = undefined;
  }

  /** How many spare files this side keeps, for tests and diagnostics. */
  spareCount(): number {
    return this.spares.length;
  }

  /** Notes a lane message; spares are dropped once none came for {@link SPARE_IDLE_MS} (one timer, re-armed only when it fires). */
  private touch(): void {
    this.lastUse = Date.now();
    if (this.idleRelease !== undefined || this.spares.length === 0) return;
    const check = (): void => {
      const idle = Date.now() - this.lastUse;
      if (this.spares.length === 0) this.idleRelease = undefined;
      else if (idle >= SPARE_IDLE_MS) this.dropSpares();
      else this.idleRelease = setTimeout(check, SPARE_IDLE_MS - idle).unref();
    };
    this.idleRelease = setTimeout(check, SPARE_IDLE_MS).unref();
  }

  /**
   * Reads the referenced payload and removes the file (it is unlinked as soon as it is open).
   * Throws a {@link LaneError}: `invalid-reference` for a name that is not a plain file name,
   * `missing` when there is no such file, `truncated` when it is shorter than the reference says,
   * `mismatch` when it is longer or its header or checksum disagree with the reference.
   * `allocate` gives the memory to read into (at least the bytes asked; a reused buffer).
   */
  read(ref: LaneReference, allocate: (bytes: number) => Buffer = Buffer.allocUnsafe): Buffer {
    const path = this.pathOf(ref);
    let fd: number;
    try {
      // Read-write: the file may be kept as a spare, to write this side's next message into.
      fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new LaneError("missing", `lane file ${ref.name} is missing (${ref.length} bytes referenced)`, { cause: err });
      throw new LaneError("io", `could not open lane file ${ref.name}: ${(err as Error).message}`, { cause: err });
    }
    let sparePath: string | undefined;
    let kept = false;
    try {
      const size = fstatSync(fd).size;
      // The referenced name goes at once either way: renamed to a spare of this side, or unlinked.
      sparePath = this.renameToSpare(path, size);
      if (sparePath === undefined) unlinkQuietly(path);
      const least = LANE_HEADER_BYTES + ref.length;
      if (size < least) throw new LaneError("truncated", `lane file ${ref.name} is truncated: ${size} bytes, expected at least ${least}`);
      if (size >= least + LANE_MAX_PADDING) throw new LaneError("mismatch", `lane file ${ref.name} is ${size} bytes, expected at most ${least + LANE_MAX_PADDING - 1}`);
      // Header, padding and payload in one read into 16-aligned memory from offset 0: the payload is a view past the header.
      const file = allocate(size).subarray(0, size);
      readAll(fd, file);
      const header = file.subarray(0, LANE_HEADER_BYTES);
      if (!header.subarray(0, 8).equals(MAGIC)) throw new LaneError("mismatch", `lane file ${ref.name} has no lane header`);
      if (header.readBigUInt64LE(8) !== ref.nonce) throw new LaneError("mismatch", `lane file ${ref.name} belongs to another message (nonce differs)`);
      if (header.readBigUInt64LE(16) !== BigInt(ref.length)) throw new LaneError("mismatch", `lane file ${ref.name} header says ${header.readBigUInt64LE(16)} bytes, reference ${ref.length}`);
      const start = header.readBigUInt64LE(24);
      if (start < LANE_HEADER_BYTES || start >= LANE_HEADER_BYTES + LANE_MAX_PADDING) throw new LaneError("mismatch", `lane file ${ref.name} header has payload start ${start}`);
      const expected = Number(start) + ref.length;
      if (size < expected) throw new LaneError("truncated", `lane file ${ref.name} is truncated: ${size} bytes, expected ${expected}`);
      if (size > expected) throw new LaneError("mismatch", `lane file ${ref.name} is ${size} bytes, expected ${expected}`);
      const payload = file.subarray(Number(start));
      if (ref.crc32 !== undefined) {
        const crc = laneCrc32(payload);
        if (crc !== undefined && crc !== ref.crc32) throw new LaneError("mismatch", `lane file ${ref.name} fails its checksum`);
      }
      if (sparePath !== undefined) {
        this.keepSpare({ fd, path: sparePath, size });
        kept = true;
      }
      return payload;
    } finally {
      if (!kept) {
        closeSync(fd);
        if (sparePath !== undefined) unlinkQuietly(sparePath); // failed its checks: not kept
      }
    }
  }

  /** Removes a referenced file without reading it (a cancelled call, a message nobody will read). */
  discard(ref: LaneReference): void {
    unlinkQuietly(this.pathOf(ref));
  }

  /** Removes the files in the directory, or only those one writer wrote; returns how many. */
  sweep(writerPrefix?: string): number {
    if (writerPrefix === undefined || writerPrefix === this.writerPrefix) this.dropSpares();
    let n = 0;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return 0;
    }
    for (const name of names) {
      if (writerPrefix !== undefined && !name.startsWith(`${writerPrefix}-`)) continue;
      if (unlinkQuietly(join(this.dir, name))) n++;
    }
    return n;
  }

  /** Removes the directory and everything in it when this object created it; otherwise sweeps its own files. */
  close(): void {
    this.dropSpares();
    if (this.owned) rmSync(this.dir, { recursive: true, force: true });
    else this.sweep(this.writerPrefix);
  }

  private pathOf(ref: LaneReference): string {
    if (!NAME_PATTERN.test(ref.name)) throw new LaneError("invalid-reference", `lane reference names ${JSON.stringify(ref.name)}, not a lane file name`);
    if (!Number.isSafeInteger(ref.length) || ref.length < 0) throw new LaneError("invalid-reference", `lane reference length ${ref.length} is not a byte count`);
    return join(this.dir, ref.name);
  }
}

/**
 * Removes lane directories under `baseDir` left by pools whose Node process is gone (a crash:
 * nothing ran its shutdown). Directories of live processes, and anything not named like a lane
 * directory, are left alone. Returns the directories removed.
 */
export function sweepStaleLaneDirs(baseDir = "/dev/shm", isAlive: (pid: number) => boolean = processAlive): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(baseDir);
  } catch {
    return removed;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const m = DIR_PATTERN.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    const path = join(baseDir, name);
    try {
      const st = statSync(path);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Raced with another sweeper: gone already.
    }
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function isTmpfs(dir: string): boolean {
  try {
    return Number(statfsSync(dir).type) === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** The kind of a failed write: a full filesystem is `no-space` (the caller then uses the socket path). */
export function laneErrorKind(err: unknown): LaneErrorKind {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOSPC" || code === "EDQUOT" ? "no-space" : "io";
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closed already.
  }
}

/**
 * Where a payload of `parts` starts in its file: its largest part (the one whose copy costs) lands
 * at a file offset congruent mod 16 to that part's offset in its memory, which malloc keeps
 * 16-aligned; so the kernel never copies it to a page position 1–15 bytes ahead of the source.
 */
export function payloadStart(parts: readonly Uint8Array[]): number {
  if (parts.length === 0) return PAYLOAD_START_BASE;
  let largest = parts[0];
  let largestAt = 0;
  let at = 0;
  for (const part of parts) {
    if (part.byteLength > largest.byteLength) {
      largest = part;
      largestAt = at;
    }
    at += part.byteLength;
  }
  return PAYLOAD_START_BASE + ((((largest.byteOffset - largestAt) % 16) + 16) % 16);
}

/** The CRC-32 of `parts` back to back (the writer's side of {@link laneCrc32}). */
function crcOf(parts: readonly Uint8Array[]): number {
  if (!zlibCrc32) throw new LaneError("io", "crc32 requested but this Node has no zlib.crc32 (needs Node ≥ 20.15)");
  let crc = 0;
  for (const p of parts) crc = zlibCrc32(p, crc);
  return crc >>> 0;
}

function unlinkQuietly(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes `parts` back to back, at `position` (a spare file) or at the file's offset (a new one). */
function writeAll(fd: number, parts: readonly Uint8Array[], total: number, position?: number): void {
  let written = 0;
  let pending = parts.filter((p) => p.byteLength > 0);
  while (written < total) {
    const n = position === undefined ? writevSync(fd, pending as NodeJS.ArrayBufferView[]) : writevSync(fd, pending as NodeJS.ArrayBufferView[], position + written);
    if (n <= 0) throw new Error("write made no progress");
    written += n;
    // Drop what was written; keep the rest of a partly written part.
    let skip = n;
    const rest: Uint8Array[] = [];
    for (const p of pending) {
      if (skip >= p.byteLength) {
        skip -= p.byteLength;
        continue;
      }
      rest.push(skip > 0 ? p.subarray(skip) : p);
      skip = 0;
    }
    pending = rest;
  }
}

function readAll(fd: number, into: Buffer): void {
  let off = 0;
  while (off < into.length) {
    const n = readSync(fd, into, off, into.length - off, off);
    if (n === 0) throw new LaneError("truncated", `lane file ended after ${off} bytes`);
    off += n;
  }
}
