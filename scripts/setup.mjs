#!/usr/bin/env node
// Makes a fresh clone ready to test, build and run the demo: the supported Node.js versions
// (from the npm registry, scripts/node.mjs), node modules, a Python virtualenv (.venv) with
// python-worker installed, the pinned code generator and generated stubs, the python-worker
// wheel, the Python version-matrix virtualenvs, and grpcurl/kubeconform. Each step is skipped
// when its inputs have not changed since it last ran, so re-runs are instant.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureGencode } from "./gencode.mjs";
import { NODE_VERSIONS, PRIMARY_NODE, envWithNode, nodeBinary, nodePackage } from "./node.mjs";
import { ensureMatrix } from "./python-matrix.mjs";
import { buildWheel, WHEEL_INPUTS } from "./build-wheel.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const venv = join(root, ".venv");
const venvPython = join(venv, "bin", "python");

function log(msg) {
  process.stderr.write(`[setup] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", ...opts });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")} could not start: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
}

function hashOf(paths) {
  const h = createHash("sha256");
  for (const p of paths) {
    const abs = join(root, p);
    if (!existsSync(abs)) continue;
    const st = statSync(abs);
    if (st.isDirectory()) {
      for (const child of readdirSync(abs).sort()) {
        if (child === "__pycache__" || child.endsWith(".egg-info")) continue;
        h.update(hashOf([join(p, child)]));
      }
    } else {
      h.update(p).update(readFileSync(abs));
    }
  }
  return h.digest("hex");
}

function step(name, stampFile, inputs, action) {
  const want = hashOf(inputs);
  const have = existsSync(stampFile) ? readFileSync(stampFile, "utf8") : "";
  if (have === want) return;
  log(name);
  action();
  writeFileSync(stampFile, hashOf(inputs));
}

// Node.js binaries from the npm registry (node-<platform>-<arch>), one directory per version.
function installNode(major) {
  const version = NODE_VERSIONS[major];
  const binary = nodeBinary(major);
  if (existsSync(binary)) return;
  log(`fetching Node.js ${version} from the npm registry (${nodePackage(version)}) into .tools/node/${version}`);
  const scratch = mkdtempSync(join(tmpdir(), "procgrpc-node-"));
  try {
    const packed = spawnSync("npm", ["pack", nodePackage(version), "--pack-destination", scratch, "--json", "--silent"], { cwd: scratch, encoding: "utf8" });
    if (packed.status !== 0) throw new Error(`npm pack ${nodePackage(version)} failed: ${packed.stderr.trim()}`);
    const unpacked = join(scratch, "unpacked");
    mkdirSync(unpacked);
    run("tar", ["-xzf", join(scratch, JSON.parse(packed.stdout)[0].filename), "-C", unpacked, "--strip-components=1"]);
    const target = dirname(dirname(binary));
    mkdirSync(dirname(target), { recursive: true });
    rmSync(target, { recursive: true, force: true });
    renameSync(unpacked, target);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const r = spawnSync(binary, ["--version"], { encoding: "utf8" });
  if (r.stdout.trim() !== `v${version}`) throw new Error(`${binary} --version printed ${r.stdout.trim() || r.stderr.trim()}, expected v${version}`);
}

// pnpm and Yarn for test/packaging.test.ts (a generated client in a pnpm and a Yarn project),
// from the npm registry into .tools/pm (their bins in .tools/pm/node_modules/.bin).
export const PACKAGE_MANAGERS = ["pnpm@12.23.0", "yarn@1.22.22"];
function installPackageManagers(env) {
  const dir = join(root, ".tools", "pm");
  const stamp = join(dir, ".procgrpc-pm");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === PACKAGE_MANAGERS.join(" ")) return;
  log(`installing ${PACKAGE_MANAGERS.join(", ")} into .tools/pm`);
  mkdirSync(dir, { recursive: true });
  run("npm", ["install", "--prefix", dir, "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error", ...PACKAGE_MANAGERS], { env });
  writeFileSync(stamp, PACKAGE_MANAGERS.join(" "));
}

function findPython() {
  const candidate = process.env.PROCGRPC_PYTHON || "python3";
  const r = spawnSync(candidate, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    throw new Error(
      `procgrpc needs Python >= 3.10, but '${candidate}' could not be run (${r.error?.message ?? r.stderr.trim()}). ` +
        "Install Python 3.10+ or set PROCGRPC_PYTHON to its path.",
    );
  }
  const [major, minor] = r.stdout.trim().split(".").map(Number);
  if (major < 3 || (major === 3 && minor < 10)) {
    throw new Error(`procgrpc needs Python >= 3.10, but '${candidate}' is ${r.stdout.trim()}. Set PROCGRPC_PYTHON.`);
  }
  return candidate;
}

// grpcurl for the debugging docs and test/grpcurl.test.ts, built from the Go module proxy into
// .tools/bin. 1.9.1 exactly: 1.9.2 and 1.9.3 break `-unix`. Without Go the step is skipped
// loudly and that test fails (it never passes without running grpcurl).
const GRPCURL_VERSION = "v1.9.1";
function installGrpcurl() {
  const bin = join(root, ".tools", "bin");
  const stamp = join(root, ".tools", ".grpcurl-version");
  if (existsSync(join(bin, "grpcurl")) && existsSync(stamp) && readFileSync(stamp, "utf8") === GRPCURL_VERSION) return;
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  if (go.error || go.status !== 0) {
    log("WARNING: `go` is not installed, so grpcurl was NOT installed into .tools/bin.");
    log("WARNING: test/grpcurl.test.ts will fail until it is. Install Go (>= 1.21) and re-run `node scripts/setup.mjs`.");
    return;
  }
  log(`installing grpcurl ${GRPCURL_VERSION} into .tools/bin (go install)`);
  mkdirSync(bin, { recursive: true });
  run("go", ["install", `github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}`], { env: { ...process.env, GOBIN: bin } });
  writeFileSync(stamp, GRPCURL_VERSION);
}

// kubeconform validates deploy/k8s in test/deploy-manifests.test.ts (schemas come from the
// kubernetes-validate PyPI package in .venv, since the usual schema download is not reachable).
const KUBECONFORM_VERSION = "v0.8.0";
function installKubeconform() {
  const bin = join(root, ".tools", "bin");
  const stamp = join(root, ".tools", ".kubeconform-version");
  if (existsSync(join(bin, "kubeconform")) && existsSync(stamp) && readFileSync(stamp, "utf8") === KUBECONFORM_VERSION) return;
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  if (go.error || go.status !== 0) {
    log("WARNING: `go` is not installed, so kubeconform was NOT installed; test/deploy-manifests.test.ts will fail until it is.");
    return;
  }
  log(`installing kubeconform ${KUBECONFORM_VERSION} into .tools/bin (go install)`);
  mkdirSync(bin, { recursive: true });
  run("go", ["install", `github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}`], { env: { ...process.env, GOBIN: bin } });
  writeFileSync(stamp, KUBECONFORM_VERSION);
}

// test/remote-hosts.test.ts builds hosts from network namespaces (`ip`, iproute2) and
// test certificates with the openssl CLI; install them when missing and we are root.
function ensureSystemTools() {
  const missing = [["ip", "iproute2"], ["openssl", "openssl"]].filter(([cmd]) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status !== 0).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    log(`WARNING: ${missing.join(", ")} missing and not root: install them (apt-get install ${missing.join(" ")}) for the remote-worker tests.`);
    return;
  }
  log(`installing ${missing.join(", ")} (apt-get)`);
  run("apt-get", ["update", "-qq"]);
  run("apt-get", ["install", "-y", "-qq", ...missing], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
}

try {
  for (const major of Object.keys(NODE_VERSIONS)) installNode(Number(major));
  // npm (and the install scripts it runs) on the primary Node, which package.json's engines accepts.
  const nodeEnv = envWithNode(PRIMARY_NODE);
  step("installing node modules", join(root, "node_modules", ".procgrpc-setup"), ["package.json", "package-lock.json"], () => {
    // `npm ci` installs exactly the lock; `npm install` when package.json changed and the lock must follow.
    const inSync = spawnSync("npm", ["ci", "--dry-run", "--no-audit", "--no-fund"], { cwd: root, env: nodeEnv, stdio: "ignore" }).status === 0;
    run("npm", [inSync ? "ci" : "install", "--no-audit", "--no-fund"], { env: nodeEnv });
  });

  installPackageManagers(nodeEnv);

  if (!existsSync(venvPython)) {
    const python = findPython();
    log(`creating Python virtualenv .venv with ${python}`);
    run(python, ["-m", "venv", venv]);
  }
  step("installing python-worker into .venv", join(venv, ".procgrpc-setup"), ["python-worker/pyproject.toml"], () => {
    run(venvPython, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", "./python-worker[dev]"]);
  });

  const gencodePython = ensureGencode(root, process.env.PROCGRPC_PYTHON || "python3", { log, run });
  const generated = [join(root, "src", "gen", "google", "rpc", "status.ts"), join(root, "gen", "python"), join(root, "python-worker", "procgrpc", "_services", "_pipeline_pb2.py")];
  if (!generated.every(existsSync)) rmSync(join(venv, ".procgrpc-codegen"), { force: true });
  step("generating stubs", join(venv, ".procgrpc-codegen"), ["proto", "scripts/codegen.ts", "scripts/gencode.mjs", "src/cli/codegen.ts", "src/cli/protoc.ts", "package-lock.json"], () => {
    run(nodeBinary(PRIMARY_NODE), ["--import", "tsx", join(root, "scripts", "codegen.ts")], { env: { ...nodeEnv, PROCGRPC_GENCODE_PYTHON: gencodePython } });
  });

  const wheelStamp = join(root, ".tools", ".procgrpc-wheel");
  if (!existsSync(join(root, "python")) || !readdirSync(join(root, "python")).some((f) => f.endsWith(".whl"))) rmSync(wheelStamp, { force: true });
  step("building the python-worker wheel into python/", wheelStamp, WHEEL_INPUTS, () => buildWheel(root, venvPython, { log, run }));
  ensureMatrix(root, { log, run });

  installGrpcurl();
  installKubeconform();
  ensureSystemTools();
} catch (err) {
  log(`failed: ${err.message}`);
  process.exit(1);
}
