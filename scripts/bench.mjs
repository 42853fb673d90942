#!/usr/bin/env node
// `npm run bench` after setup: compiles src/ and bench/ with tsc (tsconfig.bench.json) and runs
// the compiled bench/run.js, so the library is measured as the package ships it, as JavaScript,
// not through the tsx loader (whose per-module costs fall mostly on procgrpc, which loads more
// modules than the floors it is compared with; docs/benchmarks.md, "Method").
//
//   node scripts/node.mjs scripts/bench.mjs [bench/run.ts options...]
// PROCGRPC_BENCH_BUILD names the output directory (default .bench-build; test/bench-harness.test.ts
// uses its own).
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = resolve(root, process.env.PROCGRPC_BENCH_BUILD ?? ".bench-build");

rmSync(outDir, { recursive: true, force: true }); // no stale output of deleted sources
const tsc = spawnSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.bench.json"), "--outDir", outDir], { cwd: root, stdio: "inherit" });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
const run = spawnSync(process.execPath, ["--expose-gc", join(outDir, "bench", "run.js"), ...process.argv.slice(2)], { cwd: root, stdio: "inherit" });
process.exit(run.status ?? 1);
