// Regenerates every stub the repository uses (npm run codegen):
//   proto/            -> src/gen (TypeScript, ts-proto) and gen/python (grpcio-tools)
//   google/rpc/*.proto -> src/gen (TypeScript), for decoding rich error details;
//   grpc/health/v1/health.proto -> src/gen (TypeScript), for the pool's health checks;
//   grpc/reflection/v1alpha/reflection.proto -> src/gen (TypeScript), for `procgrpc call`.
// The google/rpc protos come from googleapis-common-protos, a dependency of python-worker.
//
// protoc is the one in the pinned generator virtualenv (scripts/gencode.mjs): its Python output
// carries no gencode/runtime version check, so the module procgrpc ships (_pipeline_pb2.py) and
// the test stubs import on every protobuf the Python package declares, lowest to newest.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { generate } from "../src/cli/codegen";

const root = join(__dirname, "..");
// The generator virtualenv that scripts/gencode.mjs makes (setup passes its path in the environment).
const generator = process.env.PROCGRPC_GENCODE_PYTHON ?? join(root, ".tools", "gencode", "bin", "python");
// googleapis-common-protos is located with the project's virtualenv (a python-worker dependency).
const venvPython = process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python");
const tsOnly = process.argv.includes("--ts-only");
// src/gen is bundled by tsup and loaded by jest: extensionless relative imports suit both.
const tsOptions = ["importSuffix="];

// procgrpc's own internal protos ship inside the Python package, not in gen/python (where a
// `procgrpc` directory would shadow the real package's name). One line per shipped module.
const SHIPPED_PYTHON_MODULES = [{ generated: "procgrpc/internal/v1/pipeline_pb2", shipped: "python-worker/procgrpc/_services/_pipeline_pb2" }];

rmSync(join(root, "src", "gen"), { recursive: true, force: true });
rmSync(join(root, "gen", "python"), { recursive: true, force: true });
generate({ protoDir: join(root, "proto"), tsOut: join(root, "src", "gen"), pyOut: tsOnly ? undefined : join(root, "gen", "python"), python: generator, tsOptions });

if (!tsOnly) {
  for (const { generated, shipped } of SHIPPED_PYTHON_MODULES) {
    for (const ext of ["py", "pyi"]) copyFileSync(join(root, "gen", "python", `${generated}.${ext}`), join(root, `${shipped}.${ext}`));
  }
  rmSync(join(root, "gen", "python", "procgrpc"), { recursive: true, force: true });
}

const located = spawnSync(venvPython, ["-c", "import google.rpc.status_pb2 as m, os; print(os.path.dirname(m.__file__))"], { encoding: "utf8" });
if (located.status !== 0) throw new Error(`cannot locate googleapis-common-protos with ${venvPython}: ${located.stderr}`);
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
generate({ protoDir: deps, tsOut: join(root, "src", "gen"), python: generator, tsOptions });
process.stderr.write("[codegen] stubs written to src/gen and gen/python\n");
