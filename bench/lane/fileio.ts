// Node side of the lane's file-I/O micro-benchmark (issue 15 §1): write, read and unlink a file of
// each size in a private 0700 directory under /dev/shm, several ways, and the checksum options
// available without a native addon. Prints JSON lines (median µs of several rounds).
//   npx tsx bench/lane/fileio.ts [DIR]
import { createHash } from "node:crypto";
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, unlinkSync, writeFileSync, writeSync, constants } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { SharedMemoryLane } from "../../src/transport/shared-memory-lane";

const SIZES = [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20];

function timed(fn: () => void, rounds: number): number {
  const t: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1000);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

function main(): void {
  const base = process.argv[2] ?? "/dev/shm";
  const dir = mkdtempSync(join(base, "pglane-io-"));
  const lane = SharedMemoryLane.open({ baseDir: base, fallbackDir: base });
  const crc32 = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  try {
    for (const size of SIZES) {
      const payload = Buffer.alloc(size, 3);
      const path = join(dir, "f");
      const rounds = Math.max(3, Math.min(15, Math.floor((15 * (1 << 20)) / size)));
      const into = Buffer.allocUnsafe(size);
      const out: Record<string, number | string> = { side: "node", size };
      out.write_us = timed(() => {
        const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
        let off = 0;
        while (off < size) off += writeSync(fd, payload, off, size - off);
        closeSync(fd);
      }, rounds);
      out.writeFileSync_us = timed(() => writeFileSync(path, payload, { mode: 0o600 }), rounds);
      out.readFileSync_us = timed(() => void readFileSync(path), rounds);
      out.readSync_prealloc_us = timed(() => {
        const fd = openSync(path, constants.O_RDONLY);
        let off = 0;
        while (off < size) off += readSync(fd, into, off, size - off, off);
        closeSync(fd);
      }, rounds);
      out.readSync_alloc_us = timed(() => {
        const fd = openSync(path, constants.O_RDONLY);
        const b = Buffer.allocUnsafe(fstatSync(fd).size);
        let off = 0;
        while (off < size) off += readSync(fd, b, off, size - off, off);
        closeSync(fd);
      }, rounds);
      out.write_unlink_us = timed(() => {
        writeFileSync(path, payload, { mode: 0o600 });
        unlinkSync(path);
      }, rounds);
      out.unlink_only_us = (out.write_unlink_us as number) - (out.writeFileSync_us as number);
      // The lane module's own write + read-and-unlink (header, nonce, O_EXCL, checks).
      out.lane_write_read_us = timed(() => void lane.read(lane.write(payload)), rounds);
      out.buffer_copy_us = timed(() => void Buffer.from(payload), rounds);
      if (crc32) out.crc32_us = timed(() => void crc32(payload), rounds);
      out.md5_us = timed(() => void createHash("md5").update(payload).digest(), rounds);
      out.sha1_us = timed(() => void createHash("sha1").update(payload).digest(), rounds);
      process.stdout.write(`${JSON.stringify(out)}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    lane.close();
  }
}

main();
