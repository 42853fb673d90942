// Where the repository is, for benchmarks run from their TypeScript sources (tsx) or compiled into
// .bench-build/ (`npm run bench`): the same paths either way.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "bench", "bench_worker.py"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no procgrpc repository above ${from}`);
  }
}

/** The repository's root directory. */
export const repoRoot = findRepoRoot(__dirname);
/** The repository's bench/ directory (its Python servers and results). */
export const benchDir = join(repoRoot, "bench");
