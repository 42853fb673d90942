// Builds the python-worker wheel (and sdist) into python/, from a copy of python-worker so the
// source tree gets no build/ or *.egg-info. The npm package ships the wheel
// (`procgrpc wheel` prints its path); the version matrix and the packaging test install it.
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

/** What the wheel is made of (setup re-builds when any of it changes). */
export const WHEEL_INPUTS = ["python-worker/procgrpc", "python-worker/pyproject.toml", "python-worker/README.md", "python-worker/LICENSE", "python-worker/NOTICE"];

const SKIP = new Set(["__pycache__", "build", "dist", "tests", ".mypy_cache", ".pytest_cache"]);

/** Builds with `python -m build` (in `.venv`, from the dev extra); returns the wheel's path. */
export function buildWheel(root, python, { log }) {
  const out = join(root, "python");
  const scratch = mkdtempSync(join(tmpdir(), "procgrpc-wheel-"));
  try {
    const source = join(scratch, "python-worker");
    cpSync(join(root, "python-worker"), source, {
      recursive: true,
      filter: (path) => !SKIP.has(basename(path)) && !path.endsWith(".egg-info") && !path.endsWith(".pyc"),
    });
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    // Quiet unless it fails: build narrates every step.
    const r = spawnSync(python, ["-m", "build", "--sdist", "--wheel", "--outdir", out, source], { encoding: "utf8" });
    if (r.error || r.status !== 0) throw new Error(`${python} -m build failed:\n${r.error?.message ?? ""}${r.stdout}${r.stderr}`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const wheel = readdirSync(out).find((f) => f.endsWith(".whl"));
  if (!wheel) throw new Error(`python -m build wrote no wheel into ${out}`);
  log(`built python/${wheel}`);
  return join(out, wheel);
}
