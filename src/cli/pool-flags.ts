import type { ParseArgsConfig } from "node:util";
import type { WorkerPoolOptions } from "../pool/options";
import { intFlag, usageError } from "./usage-error";

/** The `parseArgs` options shared by commands that start a pool. */
export const POOL_FLAGS = {
  workers: { type: "string" },
  python: { type: "string" },
  script: { type: "string" },
  module: { type: "string" },
  "socket-dir": { type: "string" },
} as const satisfies ParseArgsConfig["options"];

/** Usage lines for the pool flags. */
export const POOL_FLAGS_USAGE = `  --workers <n>       Python worker processes (default 1)
  --python <path>     Interpreter with procgrpc's Python package (default $PROCGRPC_PYTHON or python3)
  --script <file>     Worker entry: python <file>      } one of the two
  --module <name>     Worker entry: python -m <name>   }
  --socket-dir <dir>  Where the worker sockets go (default: a fresh private temp dir)`;

/** True when any pool flag was given. */
export function hasPoolFlags(values: Record<string, unknown>): boolean {
  return ["workers", "python", "script", "module", "socket-dir"].some((k) => values[k] !== undefined);
}

/** Builds `WorkerPoolOptions` from the pool flags, or throws a usage error. */
export function poolOptionsFromFlags(values: Record<string, string | boolean | undefined | (string | boolean)[]>, usage: string): WorkerPoolOptions {
  const script = values.script as string | undefined;
  const module = values.module as string | undefined;
  if (!script === !module) throw usageError(script ? "give --script or --module, not both" : "give --script <file> or --module <name>", usage);
  const workers = intFlag("workers", values.workers as string | undefined, usage) ?? 1;
  const common = { workers, python: values.python as string | undefined, socketDir: values["socket-dir"] as string | undefined };
  return script ? { ...common, script } : { ...common, module: module as string };
}
