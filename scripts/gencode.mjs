// The pinned Python code generator: a virtualenv (.tools/gencode) with one exact grpcio-tools.
// grpcio-tools 1.62.x bundles protoc 25, whose Python output has no gencode/runtime version
// check; output of protoc >= 26 refuses older runtimes (and newer runtimes refuse output more
// than one major version older). So the module procgrpc ships, _pipeline_pb2.py, and the test
// stubs generated with this tool import on protobuf 5.26 (the declared floor) through 7.x alike;
// scripts/python-matrix.mjs proves it on every run of `npm test`.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { atLeast, discoverPythons, pythonVersion } from "./pythons.mjs";

export const GENCODE_TOOLS = "grpcio-tools==1.62.3";
/** Relative to the repository; scripts/codegen.ts uses the same path. */
export const GENCODE_DIR = join(".tools", "gencode");
// grpcio-tools 1.62.3 publishes wheels for CPython 3.8 to 3.12.
const HOST_RANGE = [
  [3, 9],
  [3, 12],
];

function fitsHost(version) {
  return atLeast(version, HOST_RANGE[0]) && !atLeast(version, [HOST_RANGE[1][0], HOST_RANGE[1][1] + 1]);
}

function hostPython(preferred) {
  if (process.env.PROCGRPC_GENCODE_HOST) return process.env.PROCGRPC_GENCODE_HOST;
  const version = pythonVersion(preferred);
  if (version && fitsHost(version)) return preferred;
  const found = discoverPythons().filter((p) => fitsHost(p.version));
  if (found.length === 0) {
    throw new Error(
      `the pinned code generator (${GENCODE_TOOLS}) needs a CPython ${HOST_RANGE[0].join(".")}–${HOST_RANGE[1].join(".")} to run on, ` +
        `and none was found (${preferred} is ${version ? version.join(".") : "not runnable"}). Install one, or set PROCGRPC_GENCODE_HOST to its path.`,
    );
  }
  return found[found.length - 1].python;
}

/** Makes (once) the generator virtualenv and returns its python. */
export function ensureGencode(root, preferredPython, { log, run }) {
  const dir = join(root, GENCODE_DIR);
  const python = join(dir, "bin", "python");
  const stamp = join(dir, ".procgrpc-gencode");
  if (existsSync(python) && existsSync(stamp) && readFileSync(stamp, "utf8") === GENCODE_TOOLS) return python;
  const host = hostPython(preferredPython);
  log(`creating the pinned code generator ${GENCODE_DIR} (${GENCODE_TOOLS}) with ${host}`);
  run(host, ["-m", "venv", "--clear", dir]);
  run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:", GENCODE_TOOLS]);
  const check = spawnSync(python, ["-c", "import grpc_tools.protoc"], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`${GENCODE_DIR} cannot import grpc_tools: ${check.stderr}`);
  writeFileSync(stamp, GENCODE_TOOLS);
  return python;
}
