// Unit tests of the shared-memory lane's file primitives (pure file logic, real files).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, appendFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LANE_HEADER_BYTES, LANE_MAX_PADDING, LaneError, MAX_SPARE_FILES, SPARE_FILES_MAX_BYTES, SPARE_IDLE_MS, SharedMemoryLane, isSpareFileName, laneCrc32, laneErrorKind, payloadStart, sweepStaleLaneDirs, type LaneReference } from "../src/transport/shared-memory-lane";

const scratch = mkdtempSync(join(tmpdir(), "lane-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function laneIn(base: string = scratch): SharedMemoryLane {
  return SharedMemoryLane.open({ baseDir: base, fallbackDir: scratch });
}

/** The payload start a lane file's header records. */
function startOf(file: string): number {
  return Number(readFileSync(file).readBigUInt64LE(24));
}

/** A lane file as a writer with its own padding would write it (`size` cuts it). */
function writePadded(dir: string, name: string, payload: Buffer, start: number, size?: number): LaneReference {
  const head = Buffer.alloc(Math.max(start, LANE_HEADER_BYTES));
  head.write("pglane02", 0, "latin1");
  head.writeBigUInt64LE(7n, 8);
  head.writeBigUInt64LE(BigInt(payload.length), 16);
  head.writeBigUInt64LE(BigInt(start), 24);
  const data = Buffer.concat([head, payload]);
  writeFileSync(join(dir, name), size === undefined ? data : data.subarray(0, size));
  return { name, length: payload.length, nonce: 7n };
}

function errorOf(fn: () => unknown): LaneError {
  try {
    fn();
  } catch (err) {
    if (err instanceof LaneError) return err;
    throw err;
  }
  throw new Error("expected a LaneError");
}

describe("SharedMemoryLane", () => {
  it("creates a private 0700 directory and 0600 files, and round-trips payloads of every size", () => {
    const lane = laneIn();
    try {
      expect(statSync(lane.dir).mode & 0o777).toBe(0o700);
      for (const size of [0, 1, 4095, 65536, 1 << 20]) {
        const payload = Buffer.alloc(size);
        for (let i = 0; i < size; i += 997) payload[i] = i & 0xff;
        const ref = lane.write(payload);
        expect(ref.length).toBe(size);
        const file = join(lane.dir, ref.name);
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(statSync(file).size).toBe(startOf(file) + size);
        expect(lane.read(ref).equals(payload)).toBe(true);
        expect(existsSync(file)).toBe(false); // the reader removed it
      }
    } finally {
      lane.close();
    }
    expect(existsSync(lane.dir)).toBe(false);
  });

  it("writes several parts back to back without concatenating them", () => {
    const lane = laneIn();
    try {
      const ref = lane.write([Buffer.from("abc"), Buffer.alloc(0), Buffer.from("defg")]);
      expect(ref.length).toBe(7);
      expect(lane.read(ref).toString()).toBe("abcdefg");
    } finally {
      lane.close();
    }
  });

  it("gives every file a distinct name and nonce", () => {
    const lane = laneIn();
    try {
      const refs = Array.from({ length: 50 }, () => lane.write(Buffer.from("x")));
      expect(new Set(refs.map((r) => r.name)).size).toBe(50);
      expect(new Set(refs.map((r) => r.nonce)).size).toBe(50);
      expect(lane.sweep()).toBe(50);
    } finally {
      lane.close();
    }
  });

  it("reports a missing file as `missing`, never a hang", () => {
    const lane = laneIn();
    try {
      const ref = lane.write(Buffer.from("hello"));
      lane.discard(ref);
      const err = errorOf(() => lane.read(ref));
      expect(err.kind).toBe("missing");
      expect(err.message).toContain(ref.name);
      // Read twice: the second read finds nothing (the first removed it).
      const again = lane.write(Buffer.from("hello"));
      lane.read(again);
      expect(errorOf(() => lane.read(again)).kind).toBe("missing");
    } finally {
      lane.close();
    }
  });

  it("reports a truncated file as `truncated` and removes it", () => {
    const lane = laneIn();
    try {
      const ref = lane.write(Buffer.alloc(1000, 1));
      truncateSync(join(lane.dir, ref.name), LANE_HEADER_BYTES + 10);
      expect(errorOf(() => lane.read(ref)).kind).toBe("truncated");
      expect(readdirSync(lane.dir)).toEqual([]);
      const headerOnly = lane.write(Buffer.alloc(10));
      truncateSync(join(lane.dir, headerOnly.name), 5);
      expect(errorOf(() => lane.read(headerOnly)).kind).toBe("truncated");
    } finally {
      lane.close();
    }
  });

  it("reports a longer file, another message's file or a wrong header as `mismatch`", () => {
    const lane = laneIn();
    try {
      const longer = lane.write(Buffer.from("abc"));
      appendFileSync(join(lane.dir, longer.name), "more");
      expect(errorOf(() => lane.read(longer)).kind).toBe("mismatch");

      const ref = lane.write(Buffer.from("abc"));
      const stale: LaneReference = { ...ref, nonce: ref.nonce ^ 1n };
      const err = errorOf(() => lane.read(stale));
      expect(err.kind).toBe("mismatch");
      expect(err.message).toContain("nonce");

      const wrongLength = lane.write(Buffer.from("abcd"));
      expect(errorOf(() => lane.read({ ...wrongLength, length: 3 })).kind).toBe("mismatch");

      writeFileSync(join(lane.dir, "n-forged"), Buffer.alloc(LANE_HEADER_BYTES + 3));
      expect(errorOf(() => lane.read({ name: "n-forged", length: 3, nonce: 0n })).message).toContain("no lane header");
      expect(readdirSync(lane.dir)).toEqual([]);
    } finally {
      lane.close();
    }
  });

  it("starts a payload where its largest part lands 16-aligned to its memory, and records the start in the header", () => {
    const backing = new Uint8Array(1 << 16);
    for (const offset of [0, 1, 8, 15, 16, 4097]) {
      for (const prefix of [0, 3, 4, 10]) {
        const parts = [Buffer.alloc(prefix, 1), backing.subarray(offset, offset + 20000), Buffer.alloc(5, 2)];
        const start = payloadStart(parts);
        expect(start).toBeGreaterThanOrEqual(48);
        expect(start).toBeLessThan(LANE_HEADER_BYTES + LANE_MAX_PADDING);
        expect((((start + prefix - offset) % 16) + 16) % 16).toBe(0);
      }
    }
    const lane = laneIn();
    try {
      const payload = Buffer.concat([Buffer.from([0x0a, 0x90, 0x4e]), Buffer.alloc(10000, 9)]);
      const ref = lane.write([payload.subarray(0, 3), payload.subarray(3)]);
      const file = join(lane.dir, ref.name);
      const start = startOf(file);
      expect(((start + 3 - payload.subarray(3).byteOffset) % 16 + 16) % 16).toBe(0);
      expect(readFileSync(file).subarray(LANE_HEADER_BYTES, start).every((b) => b === 0)).toBe(true);
      expect(lane.read(ref).equals(payload)).toBe(true);
    } finally {
      lane.close();
    }
  });

  it("reads another writer's payload start, and reports a start outside the padding or a file cut inside it", () => {
    const lane = laneIn();
    try {
      for (const start of [LANE_HEADER_BYTES, 48, LANE_HEADER_BYTES + LANE_MAX_PADDING - 1]) {
        expect(lane.read(writePadded(lane.dir, `n-ok${start}`, Buffer.alloc(3000, 5), start)).equals(Buffer.alloc(3000, 5))).toBe(true);
      }
      lane.dropSpares();
      const inside = errorOf(() => lane.read(writePadded(lane.dir, "n-inside", Buffer.from("abc"), 16)));
      expect([inside.kind, inside.message]).toEqual(["mismatch", expect.stringContaining("payload start 16")]);
      const far = errorOf(() => lane.read(writePadded(lane.dir, "n-far", Buffer.from("abc"), LANE_HEADER_BYTES + LANE_MAX_PADDING)));
      expect([far.kind, far.message]).toEqual(["mismatch", expect.stringContaining("expected at most")]);
      const cut = errorOf(() => lane.read(writePadded(lane.dir, "n-cut", Buffer.from("abcdef"), 60, 63)));
      expect([cut.kind, cut.message]).toEqual(["truncated", expect.stringContaining("expected 66")]);
      expect(readdirSync(lane.dir)).toEqual([]);
    } finally {
      lane.close();
    }
  });

  it("refuses references that would leave the directory or are not byte counts", () => {
    const lane = laneIn();
    try {
      for (const name of ["../etc/passwd", "a/b", ".", "..", "", "x".repeat(65)]) {
        expect(errorOf(() => lane.read({ name, length: 1, nonce: 0n })).kind).toBe("invalid-reference");
      }
      expect(errorOf(() => lane.read({ name: "ok", length: -1, nonce: 0n })).kind).toBe("invalid-reference");
      expect(errorOf(() => lane.read({ name: "ok", length: 1.5, nonce: 0n })).kind).toBe("invalid-reference");
    } finally {
      lane.close();
    }
  });

  it("does not follow a symlink planted under a referenced name", () => {
    const lane = laneIn();
    try {
      const target = join(scratch, "secret");
      writeFileSync(target, "secret");
      symlinkSync(target, join(lane.dir, "n-link"));
      expect(errorOf(() => lane.read({ name: "n-link", length: 6, nonce: 0n })).kind).toBe("io");
      expect(existsSync(target)).toBe(true);
    } finally {
      lane.close();
    }
  });

  it("verifies a CRC-32 when the writer computed one", () => {
    if (laneCrc32(Buffer.from("x")) === undefined) return; // Node without zlib.crc32
    expect(laneCrc32(Buffer.from("123456789"))).toBe(0xcbf43926); // the standard check value
    const lane = laneIn();
    try {
      const ref = lane.write([Buffer.from("1234"), Buffer.from("56789")], { crc32: true });
      expect(ref.crc32).toBe(0xcbf43926);
      expect(lane.read(ref).toString()).toBe("123456789");
      const bad = lane.write(Buffer.from("123456789"), { crc32: true });
      expect(errorOf(() => lane.read({ ...bad, crc32: 1 })).kind).toBe("mismatch");
    } finally {
      lane.close();
    }
  });

  it("sweeps all files, or one writer's", () => {
    const lane = laneIn();
    try {
      const worker = SharedMemoryLane.attach(lane.dir, "w1");
      lane.write(Buffer.from("a"));
      worker.write(Buffer.from("b"));
      worker.write(Buffer.from("c"));
      expect(lane.sweep("w1")).toBe(2);
      expect(readdirSync(lane.dir)).toHaveLength(1);
      worker.write(Buffer.from("d"));
      worker.close(); // an attached side removes only its own files, never the directory
      expect(readdirSync(lane.dir)).toHaveLength(1);
      expect(lane.sweep()).toBe(1);
    } finally {
      lane.close();
    }
  });

  it("attach refuses a directory others can enter", () => {
    const dir = join(scratch, "open-dir");
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    expect(errorOf(() => SharedMemoryLane.attach(dir, "w1")).message).toContain("0700");
  });

  it("falls back when the preferred base directory is unusable", () => {
    const lane = SharedMemoryLane.open({ baseDir: join(scratch, "does-not-exist"), fallbackDir: scratch });
    try {
      expect(lane.dir.startsWith(scratch)).toBe(true);
    } finally {
      lane.close();
    }
    expect(() => SharedMemoryLane.open({ baseDir: join(scratch, "nope"), fallbackDir: join(scratch, "nope2") })).toThrow(LaneError);
  });

  it("places a message on the lane only above the threshold, on tmpfs, with room to spare", () => {
    const lane = laneIn();
    try {
      const free = lane.freeBytes();
      expect(free).toBeGreaterThan(0);
      expect(lane.placement(10, 1024, 0)).toEqual({ lane: false, reason: expect.stringContaining("below the lane threshold") });
      const big = lane.placement(2048, 1024, 0);
      if (lane.memoryBacked) expect(big).toEqual({ lane: true });
      else expect(big).toEqual({ lane: false, reason: expect.stringContaining("not memory-backed") });
      // A reserve larger than what is free: the socket path, with the reason.
      const full = lane.placement(2048, 1024, free + 1);
      expect(full.lane).toBe(false);
    } finally {
      lane.close();
    }
  });

  it("on /dev/shm (when present) the directory is memory-backed", () => {
    if (!existsSync("/dev/shm")) return;
    const lane = SharedMemoryLane.open({ fallbackDir: scratch });
    try {
      expect(lane.dir.startsWith("/dev/shm/procgrpc-lane-")).toBe(true);
      expect(lane.memoryBacked).toBe(true);
    } finally {
      lane.close();
    }
  });

  it("maps ENOSPC and EDQUOT to `no-space` (the caller falls back to the socket), anything else to `io`", () => {
    const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });
    expect(laneErrorKind(errno("ENOSPC"))).toBe("no-space");
    expect(laneErrorKind(errno("EDQUOT"))).toBe("no-space");
    expect(laneErrorKind(errno("EACCES"))).toBe("io");
    expect(laneErrorKind(new Error("plain"))).toBe("io");
  });
});

describe("spare files", () => {
  it("a read file is kept under the reader's own spare name and the reader's next message is written over it, with a new name and nonce", () => {
    const lane = laneIn();
    try {
      const worker = SharedMemoryLane.attach(lane.dir, "w1");
      const first = worker.write(Buffer.alloc(5000, 1));
      const inode = statSync(join(lane.dir, first.name)).ino;
      expect(lane.read(first).equals(Buffer.alloc(5000, 1))).toBe(true);
      const [spare] = readdirSync(lane.dir);
      expect(isSpareFileName(spare) && spare.startsWith("n-spare-")).toBe(true);
      expect(lane.spareCount()).toBe(1);
      // Smaller than the spare: the file is cut to the message.
      const next = lane.write(Buffer.from("abc"));
      expect(readdirSync(lane.dir)).toEqual([next.name]);
      expect(statSync(join(lane.dir, next.name)).ino).toBe(inode);
      expect(statSync(join(lane.dir, next.name)).size).toBe(startOf(join(lane.dir, next.name)) + 3);
      expect(next.name).not.toBe(first.name);
      expect(next.nonce).not.toBe(first.nonce);
      expect(errorOf(() => worker.read(first)).kind).toBe("missing"); // the old reference names nothing
      expect(worker.read(next).toString()).toBe("abc");
      // And larger than it: the file grows.
      expect(readdirSync(lane.dir).every((n) => n.startsWith("w1-spare-"))).toBe(true);
      const big = worker.write(Buffer.alloc(70_000, 2));
      expect(statSync(join(lane.dir, big.name)).ino).toBe(inode);
      expect(lane.read(big).equals(Buffer.alloc(70_000, 2))).toBe(true);
    } finally {
      lane.close();
    }
    expect(existsSync(lane.dir)).toBe(false);
  });

  it(`keeps at most ${MAX_SPARE_FILES} spares and ${SPARE_FILES_MAX_BYTES} bytes of them; the rest are unlinked when read`, () => {
    const lane = laneIn();
    try {
      const worker = SharedMemoryLane.attach(lane.dir, "w1");
      const refs = Array.from({ length: MAX_SPARE_FILES + 2 }, () => worker.write(Buffer.alloc(100)));
      for (const ref of refs) lane.read(ref);
      expect(lane.spareCount()).toBe(MAX_SPARE_FILES);
      expect(readdirSync(lane.dir)).toHaveLength(MAX_SPARE_FILES);
      lane.dropSpares();
      expect(readdirSync(lane.dir)).toEqual([]);
      const huge = worker.write(Buffer.alloc(SPARE_FILES_MAX_BYTES));
      lane.read(huge);
      expect(lane.spareCount()).toBe(0);
      expect(readdirSync(lane.dir)).toEqual([]);
    } finally {
      lane.close();
    }
  });

  it("a file that fails its checks is not kept", () => {
    const lane = laneIn();
    try {
      const ref = lane.write(Buffer.alloc(1000, 1));
      truncateSync(join(lane.dir, ref.name), LANE_HEADER_BYTES + 10);
      expect(errorOf(() => lane.read(ref)).kind).toBe("truncated");
      expect(lane.spareCount()).toBe(0);
      expect(readdirSync(lane.dir)).toEqual([]);
    } finally {
      lane.close();
    }
  });

  it("a spare swept from under its keeper: the next message gets a new file", () => {
    const lane = laneIn();
    try {
      lane.read(lane.write(Buffer.from("a")));
      const worker = SharedMemoryLane.attach(lane.dir, "w1");
      worker.sweep("n"); // another side removing this side's files (as the pool does for a worker that exited)
      expect(readdirSync(lane.dir)).toEqual([]);
      const ref = lane.write(Buffer.from("bc"));
      expect(lane.spareCount()).toBe(0);
      expect(worker.read(ref).toString()).toBe("bc");
    } finally {
      lane.close();
    }
  });

  it(`spares are dropped after ${SPARE_IDLE_MS} ms without a lane message (one timer, re-armed while messages come)`, () => {
    jest.useFakeTimers();
    const lane = laneIn();
    try {
      lane.read(lane.write(Buffer.from("a")));
      expect(lane.spareCount()).toBe(1);
      jest.advanceTimersByTime(SPARE_IDLE_MS - 100);
      lane.read(lane.write(Buffer.from("b"))); // a message: the spare is rewritten, then kept again
      jest.advanceTimersByTime(200);
      expect(lane.spareCount()).toBe(1);
      jest.advanceTimersByTime(SPARE_IDLE_MS);
      expect(lane.spareCount()).toBe(0);
      expect(readdirSync(lane.dir)).toEqual([]);
    } finally {
      lane.close();
      jest.useRealTimers();
    }
  });
});

describe("sweepStaleLaneDirs", () => {
  it("removes the directories of dead pools only", () => {
    const base = mkdtempSync(join(scratch, "base-"));
    const dead = join(base, "procgrpc-lane-999999-abc123");
    const alive = join(base, `procgrpc-lane-${process.ppid}-def456`);
    const mine = join(base, `procgrpc-lane-${process.pid}-ghi789`);
    const other = join(base, "something-else");
    for (const d of [dead, alive, mine, other]) mkdirSync(d, { mode: 0o700 });
    writeFileSync(join(dead, "n-0-aaaa"), "left behind");
    const removed = sweepStaleLaneDirs(base, (pid) => pid !== 999999);
    expect(removed).toEqual([dead]);
    expect(readdirSync(base).sort()).toEqual([alive, mine, other].map((d) => d.slice(base.length + 1)).sort());
  });

  it("tolerates a missing base directory", () => {
    expect(sweepStaleLaneDirs(join(scratch, "missing"))).toEqual([]);
  });
});
