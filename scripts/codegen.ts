// Regenerates every stub the repository uses (npm run codegen):
//   proto/            -> src/gen (TypeScript, ts-proto) and gen/python (grpcio-tools)
//   google/rpc/*.proto -> src/gen (TypeScript), for decoding rich error details;
//   grpc/health/v1/health.proto -> src/gen (TypeScript), for the pool's health checks;
//   grpc/reflection/v1alpha/reflection.proto -> src/gen (TypeScript), for `procgrpc call`.
// The google/rpc protos come from googleapis-common-protos, a dependency of python-worker.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { generate } from "../src/cli/codegen";

const root = join(__dirname, "..");
const python = process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python");
const tsOnly = process.argv.includes("--ts-only");

rmSync(join(root, "src", "gen"), { recursive: true, force: true });
generate({ protoDir: join(root, "proto"), tsOut: join(root, "src", "gen"), pyOut: tsOnly ? undefined : join(root, "gen", "python"), python });

// procgrpc's own internal protos ship inside the Python package, not in gen/python (where a
// `procgrpc` directory would shadow the real package's name).
if (!tsOnly) {
  for (const ext of ["py", "pyi"]) {
    copyFileSync(join(root, "gen", "python", "procgrpc", "internal", "v1", `pipeline_pb2.${ext}`), join(root, "python-worker", "procgrpc", "_services", `_pipeline_pb2.${ext}`));
  }
  rmSync(join(root, "gen", "python", "procgrpc"), { recursive: true, force: true });
}

const located = spawnSync(python, ["-c", "import google.rpc.status_pb2 as m, os; print(os.path.dirname(m.__file__))"], { encoding: "utf8" });
if (located.status !== 0) throw new Error(`cannot locate googleapis-common-protos with ${python}: ${located.stderr}`);
const deps = join(root, "gen", "deps-proto");
mkdirSync(join(deps, "google", "rpc"), { recursive: true });
for (const file of ["status.proto", "error_details.proto"]) {
  copyFileSync(join(located.stdout.trim(), file), join(deps, "google", "rpc", file));
}
// grpc.health.v1, as published by grpc-node's grpc-health-check package.
mkdirSync(join(deps, "grpc", "health", "v1"), { recursive: true });
copyFileSync(require.resolve("grpc-health-check/proto/health/v1/health.proto"), join(deps, "grpc", "health", "v1", "health.proto"));
// grpc.reflection.v1alpha (what grpcio-reflection serves), as published by grpc-node's
// @grpc/reflection package, for `procgrpc call` without a .proto file.
mkdirSync(join(deps, "grpc", "reflection", "v1alpha"), { recursive: true });
copyFileSync(
  join(dirname(require.resolve("@grpc/reflection/package.json")), "build", "proto", "grpc", "reflection", "v1alpha", "reflection.proto"),
  join(deps, "grpc", "reflection", "v1alpha", "reflection.proto"),
);
generate({ protoDir: deps, tsOut: join(root, "src", "gen") });
process.stderr.write("[codegen] stubs written to src/gen and gen/python\n");
