import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

/** What `procgrpc codegen` generates, and from where. */
export interface CodegenOptions {
  /** Directory holding the `.proto` files (the import root). */
  protoDir: string;
  /** Where the TypeScript (ts-proto) stubs go; omit to skip TypeScript. */
  tsOut?: string;
  /** Where the Python (grpcio-tools) stubs go; omit to skip Python. */
  pyOut?: string;
  /** Python interpreter that has grpcio-tools (installed with procgrpc's python-worker). */
  python?: string;
  /** Extra ts-proto options (`key=value`), added to procgrpc's defaults. */
  tsOptions?: readonly string[];
}

/** ts-proto options procgrpc's clients are built on: nice-grpc style generic definitions. */
export const DEFAULT_TS_PROTO_OPTIONS: readonly string[] = [
  "outputServices=generic-definitions",
  "useExactTypes=false",
  "esModuleInterop=true",
  "env=node",
  "useOptionals=messages",
];

function listProtoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const abs = join(dir, entry);
    if (statSync(abs).isDirectory()) out.push(...listProtoFiles(abs));
    else if (entry.endsWith(".proto")) out.push(abs);
  }
  return out;
}

function runTool(what: string, cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8" });
  if (r.error) {
    throw new Error(`codegen: could not run ${what} (${cmd}): ${r.error.message}`);
  }
  if (r.status !== 0) {
    throw new Error(`codegen: ${what} failed (exit ${r.status ?? r.signal}):\n${(r.stderr || r.stdout).trim()}`);
  }
}

/**
 * Generates TypeScript stubs with ts-proto (driven by the buf CLI shipped in `@bufbuild/buf`)
 * and Python stubs with grpcio-tools, from one directory of `.proto` files.
 * Throws an Error naming the tool and its output when generation fails.
 */
export function generate(options: CodegenOptions): { files: number } {
  const protoDir = resolve(options.protoDir);
  if (!existsSync(protoDir) || !statSync(protoDir).isDirectory()) {
    throw new Error(`codegen: --proto ${options.protoDir} is not a directory of .proto files`);
  }
  const files = listProtoFiles(protoDir);
  if (files.length === 0) throw new Error(`codegen: no .proto files under ${protoDir}`);
  if (!options.tsOut && !options.pyOut) throw new Error("codegen: give --ts-out, --py-out or both");

  if (options.tsOut) {
    const tsOut = resolve(options.tsOut);
    mkdirSync(tsOut, { recursive: true });
    const buf = require.resolve("@bufbuild/buf/bin/buf");
    const plugin = require.resolve("ts-proto/protoc-gen-ts_proto");
    const template = {
      version: "v2",
      plugins: [
        {
          local: [process.execPath, plugin],
          out: tsOut,
          opt: [...DEFAULT_TS_PROTO_OPTIONS, ...(options.tsOptions ?? [])],
        },
      ],
    };
    // --template with inline JSON and the directory as input: no buf.yaml or BSR access needed.
    runTool("buf generate (ts-proto)", buf, ["generate", protoDir, "--template", JSON.stringify(template)], protoDir);
  }

  if (options.pyOut) {
    const pyOut = resolve(options.pyOut);
    mkdirSync(pyOut, { recursive: true });
    const python = options.python ?? process.env.PROCGRPC_PYTHON ?? "python3";
    const check = spawnSync(python, ["-c", "import grpc_tools.protoc"], { encoding: "utf8" });
    if (check.error || check.status !== 0) {
      throw new Error(
        `codegen: ${python} cannot import grpc_tools (grpcio-tools). Install procgrpc's Python package ` +
          `(pip install ./node_modules/procgrpc/python-worker) into that interpreter, or pass --python.`,
      );
    }
    runTool(
      "grpc_tools.protoc",
      python,
      [
        "-m",
        "grpc_tools.protoc",
        `-I${protoDir}`,
        `--python_out=${pyOut}`,
        `--grpc_python_out=${pyOut}`,
        `--pyi_out=${pyOut}`,
        ...files.map((f) => relative(protoDir, f)),
      ],
      protoDir,
    );
  }
  return { files: files.length };
}
