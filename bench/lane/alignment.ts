// How the kernel's copy between process memory and tmpfs pages depends on their relative
// alignment (issue 15 §1; why lane files record a payload start, docs/shared-memory-lane.md
// "Alignment"): 1 MiB written to, and read from, a file on /dev/shm at file offsets 0–63 from a
// buffer at offset 0 (malloc'd memory, 16-aligned). Prints one JSON line per operation: the
// median µs of each offset, and which offsets were over twice the fastest.
//   npx tsx bench/lane/alignment.ts [DIR] [--rounds N]
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "../lib/measure";

const { values: args, positionals } = parseArgs({ allowPositionals: true, options: { rounds: { type: "string", default: "200" } } });
const MiB = 1 << 20;
const rounds = Number(args.rounds);
const dir = mkdtempSync(join(positionals[0] ?? "/dev/shm", "pg-align-"));

/** Median µs of `rounds` runs of `fn`. */
function medianUs(fn: () => void): number {
  const t: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1000);
  }
  return median(t);
}

try {
  const fd = openSync(join(dir, "f"), "w+", 0o600);
  const memory = Buffer.alloc(MiB + 4096, 7);
  writeSync(fd, memory, 0, memory.length, 0); // the file's pages exist: a rewrite, as with a spare file
  for (const op of ["write", "read"] as const) {
    const us: Record<number, number> = {};
    for (let offset = 0; offset < 64; offset++) {
      us[offset] = medianUs(() => (op === "write" ? writeSync(fd, memory, 0, MiB, offset) : readSync(fd, memory, 0, MiB, offset)));
    }
    const fastest = Math.min(...Object.values(us));
    const slow = Object.keys(us).map(Number).filter((o) => us[o] > 2 * fastest);
    console.log(JSON.stringify({ op, bytes: MiB, fastestUs: Math.round(fastest), slowestUs: Math.round(Math.max(...Object.values(us))), slowFileOffsets: slow, us }));
  }
  closeSync(fd);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
