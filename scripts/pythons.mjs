// The Python interpreters this machine has: python3.N on PATH and pyenv's versions, one per
// minor version (the newest patch found). Used to host the pinned code generator
// (scripts/gencode.mjs) and to pick the lowest and highest Python for the version matrix.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** `[major, minor, patch]` of an interpreter, or undefined when it does not run. */
export function pythonVersion(python) {
  const r = spawnSync(python, ["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout.trim().split(".").map(Number);
}

function candidates() {
  const found = [];
  for (const dir of (process.env.PATH ?? "").split(":").filter(Boolean)) {
    for (let minor = 6; minor <= 20; minor++) {
      const path = join(dir, `python3.${minor}`);
      if (existsSync(path)) found.push(path);
    }
  }
  const pyenv = join(process.env.PYENV_ROOT ?? join(homedir(), ".pyenv"), "versions");
  if (existsSync(pyenv)) {
    for (const name of readdirSync(pyenv)) {
      if (/^3\.\d+\.\d+$/.test(name)) found.push(join(pyenv, name, "bin", "python"));
    }
  }
  return found;
}

/** Every CPython 3 found, one per minor version (newest patch), ascending: `[{ python, version, label }]`. */
export function discoverPythons() {
  const byMinor = new Map();
  for (const python of candidates()) {
    const version = pythonVersion(python);
    if (!version || version[0] !== 3) continue;
    const have = byMinor.get(version[1]);
    if (!have || version[2] > have.version[2]) byMinor.set(version[1], { python, version, label: version.join(".") });
  }
  return [...byMinor.values()].sort((a, b) => a.version[1] - b.version[1]);
}

/** Compares `[major, minor]` pairs. */
export function atLeast(version, [major, minor]) {
  return version[0] > major || (version[0] === major && version[1] >= minor);
}
