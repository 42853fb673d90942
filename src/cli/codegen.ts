import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { checkProtoc, protocPython, runProtoc } from "./protoc";
import { usageError } from "./usage-error";

/** What `procgrpc codegen` generates, and from where. Relative paths resolve against `cwd`. */
export interface CodegenOptions {
  /** Directory holding the `.proto` files (the import root). */
  protoDir: string;
  /** Where the TypeScript (ts-proto) stubs go; omit to skip TypeScript. */
  tsOut?: string;
  /** Where the Python (grpcio-tools) stubs go; omit to skip Python. */
  pyOut?: string;
  /** Python with grpcio-tools (`procgrpc[codegen]`); its protoc compiles both sides. Default `$PROCGRPC_PYTHON` or `python3`. */
  python?: string;
  /** Extra ts-proto options (`key=value`): a key procgrpc sets by default takes the new value, `key=` drops it. */
  tsOptions?: readonly string[];
  /** Base of relative paths. Default: the process's working directory. */
  cwd?: string;
}

/** What `generate` did. */
export interface CodegenResult {
  /** Number of `.proto` files compiled. */
  files: number;
  /** Absolute output directories (undefined when that side was skipped). */
  tsOut?: string;
  pyOut?: string;
  /** Problems that do not stop generation, e.g. the generated code's runtime dependency is not installed. */
  warnings: string[];
}

/**
 * ts-proto options procgrpc's clients are built on: generic service definitions (what
 * `pool.client()` takes), plain optional message fields, Node buffers, and a `.js` suffix on
 * relative imports so the output compiles under `module: nodenext` (ESM or CommonJS) as well as
 * older resolution modes.
 */
export const DEFAULT_TS_PROTO_OPTIONS: readonly string[] = [
  "outputServices=generic-definitions",
  "useExactTypes=false",
  "esModuleInterop=true",
  "env=node",
  "useOptionals=messages",
  "importSuffix=.js",
];

/** The runtime package ts-proto's output imports (`@bufbuild/protobuf/wire`); the user's project must depend on it. */
export const GENERATED_CODE_RUNTIME = "@bufbuild/protobuf";

/** procgrpc's defaults with `extra` applied by key (`key=value` replaces, `key=` removes, other keys are added). */
export function tsProtoOptions(extra: readonly string[] = []): string[] {
  const options = new Map<string, string>();
  for (const option of [...DEFAULT_TS_PROTO_OPTIONS, ...extra]) {
    const eq = option.indexOf("=");
    const key = eq < 0 ? option : option.slice(0, eq);
    if (eq === option.length - 1) options.delete(key);
    else options.set(key, option);
  }
  return [...options.values()];
}

function listProtoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const abs = join(dir, entry);
    if (statSync(abs).isDirectory()) out.push(...listProtoFiles(abs));
    else if (entry.endsWith(".proto")) out.push(abs);
  }
  return out;
}

function tsProtoPlugin(bases: readonly string[]): string {
  for (const base of bases) {
    try {
      return require.resolve("ts-proto/protoc-gen-ts_proto", { paths: [base] });
    } catch {
      // not installed where this base looks; try the next
    }
  }
  throw new Error(`codegen: --ts-out needs ts-proto, an optional peer dependency of procgrpc, and it is not installed (looked from ${bases[0]}): npm install --save-dev ts-proto`);
}

/** protoc runs plugins as executables; this one runs ts-proto on the Node that runs procgrpc. */
function pluginLauncher(dir: string, plugin: string): string {
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const path = join(dir, "protoc-gen-ts_proto");
  writeFileSync(path, `#!/bin/sh\nexec ${quote(process.execPath)} ${quote(plugin)} "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

function resolvesFrom(dir: string, specifier: string): boolean {
  try {
    require.resolve(specifier, { paths: [dir] });
    return true;
  } catch {
    return false;
  }
}

/**
 * Generates TypeScript stubs with ts-proto and Python stubs with grpcio-tools from one directory
 * of `.proto` files, both through grpcio-tools' protoc. Throws an Error naming the path or tool
 * that failed.
 */
export function generate(options: CodegenOptions): CodegenResult {
  const cwd = resolve(options.cwd ?? process.cwd());
  const protoDir = resolve(cwd, options.protoDir);
  if (!existsSync(protoDir) || !statSync(protoDir).isDirectory()) {
    throw new Error(`codegen: --proto ${options.protoDir}: ${protoDir} is not a directory of .proto files`);
  }
  const files = listProtoFiles(protoDir);
  if (files.length === 0) throw new Error(`codegen: no .proto files under ${protoDir}`);
  if (!options.tsOut && !options.pyOut) throw new Error("codegen: give --ts-out, --py-out or both");
  const python = protocPython(options.python, cwd);
  checkProtoc(python, "procgrpc codegen");

  const tsOut = options.tsOut === undefined ? undefined : resolve(cwd, options.tsOut);
  const pyOut = options.pyOut === undefined ? undefined : resolve(cwd, options.pyOut);
  const warnings: string[] = [];
  const args = [`-I${protoDir}`];
  const scratch = mkdtempSync(join(tmpdir(), "procgrpc-codegen-"));
  try {
    if (tsOut) {
      const plugin = tsProtoPlugin([cwd, tsOut, __dirname]);
      mkdirSync(tsOut, { recursive: true });
      args.push(`--plugin=protoc-gen-ts_proto=${pluginLauncher(scratch, plugin)}`, `--ts_proto_out=${tsOut}`, `--ts_proto_opt=${tsProtoOptions(options.tsOptions).join(",")}`);
      if (!resolvesFrom(tsOut, `${GENERATED_CODE_RUNTIME}/wire`)) {
        warnings.push(`the generated TypeScript imports ${GENERATED_CODE_RUNTIME}, which is not installed where ${tsOut} can see it: add it to your project (npm install ${GENERATED_CODE_RUNTIME})`);
      }
    }
    if (pyOut) {
      mkdirSync(pyOut, { recursive: true });
      args.push(`--python_out=${pyOut}`, `--grpc_python_out=${pyOut}`, `--pyi_out=${pyOut}`);
    }
    runProtoc(python, [...args, ...files], protoDir);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { files: files.length, tsOut, pyOut, warnings };
}

/** `procgrpc codegen --help`. */
export const CODEGEN_USAGE = `Usage: procgrpc codegen --proto <dir> [--ts-out <dir>] [--py-out <dir>] [--python <python>] [--ts-opt key=value]...

Generates stubs for every .proto file under --proto (the import root), with the protoc of
grpcio-tools (pip install "procgrpc[codegen]"):
  --ts-out <dir>    TypeScript service definitions and messages (ts-proto; npm install --save-dev ts-proto),
                    for WorkerPool.client(); the generated code imports @bufbuild/protobuf
  --py-out <dir>    Python *_pb2.py, *_pb2_grpc.py and .pyi stubs, for your servicers
  --python <path>   Python with grpcio-tools; default $PROCGRPC_PYTHON or python3
  --ts-opt <k=v>    Extra ts-proto option (repeatable); replaces a default of the same key, k= drops it
  --json            Print the result as JSON
Relative paths are relative to the current directory.
`;

/** Runs `procgrpc codegen`; returns the exit code (usage errors throw, see usage-error.ts). */
export function codegenCommand(args: readonly string[], out: (s: string) => void, err: (s: string) => void): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        proto: { type: "string" },
        "ts-out": { type: "string" },
        "py-out": { type: "string" },
        python: { type: "string" },
        "ts-opt": { type: "string", multiple: true },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    throw usageError((e as Error).message, CODEGEN_USAGE);
  }
  if (values.help) {
    out(CODEGEN_USAGE);
    return 0;
  }
  if (!values.proto) throw usageError("--proto <dir> is required", CODEGEN_USAGE);
  if (!values["ts-out"] && !values["py-out"]) throw usageError("give --ts-out, --py-out or both", CODEGEN_USAGE);
  const result = generate({ protoDir: values.proto, tsOut: values["ts-out"], pyOut: values["py-out"], python: values.python, tsOptions: values["ts-opt"] });
  for (const warning of result.warnings) err(`procgrpc codegen: warning: ${warning}\n`);
  if (values.json) {
    out(`${JSON.stringify({ ok: true, protoFiles: result.files, tsOut: result.tsOut ?? null, pyOut: result.pyOut ?? null, warnings: result.warnings })}\n`);
  } else {
    out(`generated stubs for ${result.files} .proto file(s)${result.tsOut ? `; TypeScript in ${result.tsOut}` : ""}${result.pyOut ? `; Python in ${result.pyOut}` : ""}\n`);
  }
  return 0;
}
