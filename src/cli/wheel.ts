import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { usageError } from "./usage-error";

/** `procgrpc wheel --help`. */
export const WHEEL_USAGE = `Usage: procgrpc wheel

Prints the absolute path of the procgrpc Python wheel shipped in this npm package (the same
version as the package), for pip or any other installer:
  .venv/bin/pip install "$(npx procgrpc wheel)"              # run workers
  .venv/bin/pip install "$(npx procgrpc wheel)[codegen]"     # and run procgrpc codegen
`;

/** Where the Python wheel lives inside the npm package (built by scripts/build-wheel.mjs). */
export const WHEEL_DIR = "python";

interface PackageJson {
  name?: string;
  version?: string;
}

/** The procgrpc package directory this code runs from (dist/ when installed, src/cli in the repository). */
function packageRoot(from: string): { dir: string; version: string } {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, "utf8")) as PackageJson;
      if (pkg.name === "procgrpc" && pkg.version) return { dir, version: pkg.version };
    }
    if (dirname(dir) === dir) throw new Error(`cannot find procgrpc's package.json above ${from}`);
  }
}

/** The wheel's absolute path; throws naming the path it looked for. */
export function wheelPath(from: string = __dirname): string {
  const { dir, version } = packageRoot(from);
  const path = join(dir, WHEEL_DIR, `procgrpc-${version}-py3-none-any.whl`);
  if (!existsSync(path)) throw new Error(`no Python wheel at ${path} (in a git checkout, \`node scripts/setup.mjs\` builds it)`);
  return path;
}

/** Runs `procgrpc wheel`; returns the exit code. */
export function wheelCommand(args: readonly string[], out: (s: string) => void): number {
  if (args.includes("--help") || args.includes("-h")) {
    out(WHEEL_USAGE);
    return 0;
  }
  if (args.length > 0) throw usageError(`unexpected argument '${args[0]}'`, WHEEL_USAGE);
  out(`${wheelPath()}\n`);
  return 0;
}
