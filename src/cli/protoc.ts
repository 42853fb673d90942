import { spawnSync } from "node:child_process";
import { isAbsolute, resolve } from "node:path";

/**
 * protoc as shipped in grpcio-tools (`pip install "procgrpc[codegen]"`): the one proto compiler
 * behind `procgrpc codegen` and `procgrpc call --proto`, so nothing native ships in the npm package.
 */

/**
 * The interpreter to run protoc with: `--python`, else `$PROCGRPC_PYTHON`, else `python3`. A path
 * (not a bare command looked up on PATH) that is relative resolves against `cwd`.
 */
export function protocPython(given: string | undefined, cwd: string = process.cwd()): string {
  const python = given ?? process.env.PROCGRPC_PYTHON ?? "python3";
  return python.includes("/") && !isAbsolute(python) ? resolve(cwd, python) : python;
}

/** Throws an Error naming the interpreter (and how to fix it) unless it can import grpc_tools. */
export function checkProtoc(python: string, needs: string): void {
  const r = spawnSync(python, ["-c", "import grpc_tools.protoc"], { encoding: "utf8" });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === "ENOENT";
    throw new Error(`${needs} runs protoc from grpcio-tools with ${python}, which ${missing ? "does not exist" : `could not be run (${r.error.message})`}; pass --python <path to a Python with procgrpc[codegen]>`);
  }
  if (r.status !== 0) {
    throw new Error(
      `${needs} runs protoc from grpcio-tools, but ${python} cannot import grpc_tools: ` +
        `install procgrpc's Python package with the codegen extra there (pip install "$(npx procgrpc wheel)[codegen]", or pip install grpcio-tools), or pass --python`,
    );
  }
}

/** Runs `python -m grpc_tools.protoc <args>` (its bundled well-known types are on the import path); throws with protoc's output on failure. */
export function runProtoc(python: string, args: readonly string[], cwd: string): Buffer {
  const r = spawnSync(python, ["-m", "grpc_tools.protoc", ...args], { cwd, maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw new Error(`could not run ${python} -m grpc_tools.protoc: ${r.error.message}`);
  if (r.status !== 0) {
    const output = (r.stderr.length ? r.stderr : r.stdout).toString().trim();
    throw new Error(`protoc (grpcio-tools, ${python}) failed (exit ${r.status ?? r.signal}):\n${output}`);
  }
  return r.stdout;
}
