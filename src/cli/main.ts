import { callCommand } from "./call";
import { codegenCommand } from "./codegen";
import { dlqCommand } from "./dlq";
import { serveCommand } from "./serve";
import { wheelCommand } from "./wheel";

const USAGE = `procgrpc — call Python from Node.js over gRPC

Usage:
  procgrpc codegen --proto <dir> [--ts-out <dir>] [--py-out <dir>] [--python <python>] [--ts-opt key=value]...
  procgrpc serve (--script <file> | --module <name>) [--workers <n>] [--watch] [--metrics-port <p>] [--json]
  procgrpc call <package.Service/Method> [--data '<json>' | --data-file <file>] (--socket <path> | --script <file> | --module <name>) [--json]
  procgrpc dlq (list | show <id> | replay | purge | migrate) --store <path> [...]
  procgrpc wheel
  procgrpc <command> --help | procgrpc --help | --version

Commands:
  codegen   Generate TypeScript (ts-proto) and Python (grpcio-tools) stubs from a directory of .proto files.
  serve     Run a pool of Python workers in the foreground; print sockets and state changes; serve metrics;
            --watch reloads the workers when their Python files change.
  call      Make one call of any kind (types from server reflection or a .proto file); print the responses
            (streams: one JSON object a line; requests of client/bidi streams: NDJSON on stdin) or the error.
  dlq       Inspect, replay (through a pool) or purge a dead-letter store written by pool.batch.
  wheel     Print the path of the procgrpc Python wheel in this package (pip install "$(npx procgrpc wheel)").

Exit codes: 0 ok, 1 failure, 2 bad usage, 130 interrupted (Ctrl-C).
`;

/** Runs the `procgrpc` command line; returns (or resolves with) the exit code. */
export function main(argv: readonly string[], out?: (s: string) => unknown, err: (s: string) => unknown = (s) => process.stderr.write(s)): number | Promise<number> {
  if (!out) {
    out = (s) => process.stdout.write(s);
    // stdout closed by its reader (`procgrpc call … | head`): stop quietly; the pools' exit hook stops their workers.
    if (process.stdout.listenerCount("error") === 0) {
      process.stdout.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code !== "EPIPE") throw e;
        process.exit(0);
      });
    }
  }
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    out(USAGE);
    return command ? 0 : 2;
  }
  if (command === "--version") {
    out(`${(require("../../package.json") as { version: string }).version}\n`);
    return 0;
  }
  try {
    switch (command) {
      case "codegen":
        return codegenCommand(rest, out, err);
      case "serve":
        return serveCommand(rest, out, err).catch((e: unknown) => reportError(command, e, err));
      case "call":
        return callCommand(rest, out, err).catch((e: unknown) => reportError(command, e, err));
      case "wheel":
        return wheelCommand(rest, out);
      case "dlq":
        return dlqCommand(rest, out, err).catch((e: unknown) => reportError(command, e, err));
      default:
        err(`procgrpc: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    return reportError(command, e, err);
  }
}

function reportError(command: string, e: unknown, err: (s: string) => unknown): number {
  err(`procgrpc ${command}: ${(e as Error).message}\n`);
  return (e as { exitCode?: number }).exitCode ?? 1;
}

if (require.main === module) void Promise.resolve(main(process.argv.slice(2))).then((code) => (process.exitCode = code));
