#!/usr/bin/env node
// The Python version matrix: the lowest and the highest Python this machine has that
// python-worker supports (requires-python), each with the lowest versions python-worker declares
// (exactly its `>=` floors) and with the newest releases. setup makes one virtualenv per cell in
// .tools/python-matrix with the built wheel and its `test` extra, and writes manifest.json;
//   node scripts/python-matrix.mjs [pytest arguments]
// runs python-worker's test suite in every cell, and test/python-matrix.test.ts makes real pool
// round trips with each. "newest" is resolved again once a day.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { atLeast, discoverPythons } from "./pythons.mjs";

export const MATRIX_DIR = join(".tools", "python-matrix");
/** Packages whose installed versions the manifest (and the report) records. */
const RECORDED = ["grpcio", "grpcio-status", "grpcio-health-checking", "grpcio-reflection", "protobuf", "googleapis-common-protos"];

/** `requires-python` and the `name>=floor` runtime dependencies of python-worker/pyproject.toml. */
export function declaredFloors(root) {
  const text = readFileSync(join(root, "python-worker", "pyproject.toml"), "utf8");
  const requires = /^requires-python\s*=\s*">=\s*(\d+)\.(\d+)"/m.exec(text);
  const block = /^dependencies\s*=\s*\[([\s\S]*?)\]/m.exec(text);
  if (!requires || !block) throw new Error("python-worker/pyproject.toml: cannot read requires-python (>=X.Y) or dependencies");
  const deps = [...block[1].matchAll(/"([^"]+)"/g)].map(([, spec]) => {
    const m = /^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)$/.exec(spec);
    if (!m) throw new Error(`python-worker/pyproject.toml: dependency '${spec}' is not of the form name>=floor, so its floor cannot be tested`);
    return { name: m[1], floor: m[2] };
  });
  return { requiresPython: [Number(requires[1]), Number(requires[2])], deps };
}

/** The cells: `{ id, base, label, deps: "lowest" | "newest", dir }`, lowest Python first. */
export function matrixPlan(root) {
  const { requiresPython } = declaredFloors(root);
  const supported = discoverPythons().filter((p) => atLeast(p.version, requiresPython));
  if (supported.length === 0) throw new Error(`no Python >= ${requiresPython.join(".")} found on PATH or in pyenv for the version matrix`);
  const ends = supported.length === 1 ? [supported[0]] : [supported[0], supported[supported.length - 1]];
  return ends.flatMap((p) =>
    ["lowest", "newest"].map((deps) => ({ id: `py${p.label}-${deps}`, base: p.python, label: p.label, deps, dir: join(root, MATRIX_DIR, `py${p.label}-${deps}`) })),
  );
}

function sha(text) {
  return createHash("sha256").update(text).digest("hex");
}

function installedVersions(python) {
  const code = `import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in ${JSON.stringify(RECORDED)}}))`;
  const r = spawnSync(python, ["-c", code], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${python}: cannot read installed versions: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Creates or refreshes every cell's virtualenv and writes manifest.json; returns the manifest. */
export function ensureMatrix(root, { log, run }) {
  const wheelDir = join(root, "python");
  const wheelName = readdirSync(wheelDir).find((f) => f.endsWith(".whl"));
  if (!wheelName) throw new Error("python/ has no wheel: build it first (scripts/build-wheel.mjs)");
  const wheel = join(wheelDir, wheelName);
  const wheelHash = sha(readFileSync(wheel));
  const { deps } = declaredFloors(root);
  const constraints = deps.map((d) => `${d.name}==${d.floor}\n`).join("");
  const today = new Date().toISOString().slice(0, 10);
  const pip = ["-m", "pip", "--disable-pip-version-check", "install", "--quiet", "--only-binary=:all:"];
  const entries = [];
  for (const cell of matrixPlan(root)) {
    const python = join(cell.dir, "bin", "python");
    const stampPath = join(cell.dir, ".procgrpc-matrix.json");
    const stamp = existsSync(stampPath) ? JSON.parse(readFileSync(stampPath, "utf8")) : {};
    const want = { base: cell.base, deps: sha(cell.deps === "lowest" ? constraints : deps.map((d) => d.name).join(",")), day: cell.deps === "newest" ? today : undefined };
    if (!existsSync(python) || stamp.base !== want.base || stamp.deps !== want.deps || stamp.day !== want.day) {
      log(`python matrix ${cell.id}: virtualenv with ${cell.deps === "lowest" ? "the declared floors" : "the newest releases"} (${cell.base})`);
      mkdirSync(cell.dir, { recursive: true });
      run(cell.base, ["-m", "venv", "--clear", cell.dir]);
      const constraintsFile = join(cell.dir, "constraints.txt");
      writeFileSync(constraintsFile, constraints);
      run(python, [...pip, ...(cell.deps === "lowest" ? ["-c", constraintsFile] : ["--upgrade", "--upgrade-strategy", "eager"]), `${wheel}[test]`]);
      stamp.wheel = wheelHash;
    } else if (stamp.wheel !== wheelHash) {
      log(`python matrix ${cell.id}: reinstalling procgrpc from ${wheelName}`);
      run(python, [...pip, "--no-deps", "--force-reinstall", wheel]);
    }
    const versions = installedVersions(python);
    if (cell.deps === "lowest") {
      const wrong = deps.filter((d) => versions[d.name] !== undefined && versions[d.name] !== d.floor);
      if (wrong.length) throw new Error(`python matrix ${cell.id}: floors not installed: ${wrong.map((d) => `${d.name} ${versions[d.name]} != ${d.floor}`).join(", ")}`);
    }
    writeFileSync(stampPath, JSON.stringify({ ...want, wheel: wheelHash }));
    entries.push({ id: cell.id, python, basePython: cell.base, pythonVersion: cell.label, deps: cell.deps, versions });
  }
  const manifest = { wheel: wheelName, entries };
  writeFileSync(join(root, MATRIX_DIR, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Runs python-worker's pytest suite in one cell; resolves with its exit code and output. */
function pytest(root, entry, extraArgs) {
  return new Promise((resolve) => {
    const child = spawn(entry.python, ["-m", "pytest", "python-worker/tests", "-q", "-p", "no:cacheprovider", ...extraArgs], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  const manifestPath = join(root, MATRIX_DIR, "manifest.json");
  if (!existsSync(manifestPath)) {
    process.stderr.write(`${manifestPath} is missing: run node scripts/setup.mjs first\n`);
    process.exit(1);
  }
  const { entries } = JSON.parse(readFileSync(manifestPath, "utf8"));
  const extraArgs = process.argv.slice(2);
  // Two cells at a time: the suite mostly waits on worker processes, and the machine has 2 cores.
  const queue = [...entries];
  const results = new Map();
  const startedAt = Date.now();
  await Promise.all(
    [0, 1].map(async () => {
      for (let entry = queue.shift(); entry; entry = queue.shift()) {
        const t0 = Date.now();
        const result = await pytest(root, entry, extraArgs);
        results.set(entry.id, { ...result, seconds: (Date.now() - t0) / 1000 });
        const summary = result.output.trim().split("\n").pop();
        process.stdout.write(`[python matrix] ${entry.id} (grpcio ${entry.versions.grpcio}, protobuf ${entry.versions.protobuf}): ${summary}\n`);
      }
    }),
  );
  let failed = 0;
  for (const entry of entries) {
    const result = results.get(entry.id);
    if (result.code !== 0) {
      failed++;
      process.stdout.write(`\n[python matrix] ${entry.id} FAILED; its output:\n${result.output}\n`);
    }
  }
  process.stdout.write(`[python matrix] ${entries.length - failed}/${entries.length} cells passed in ${((Date.now() - startedAt) / 1000).toFixed(0)} s\n`);
  process.exit(failed ? 1 : 0);
}
