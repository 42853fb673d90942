// procgrpc as a real package: `npm pack`, install the tarball into a fresh project, use it from
// CommonJS, ESM and TypeScript, run `npx procgrpc codegen` there, `pip install` the shipped
// python-worker into a fresh virtualenv, and serve + call a service of that project's own.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers/env";

jest.setTimeout(300_000);

const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });

let project: string;
beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), "procgrpc-pkg-"));
  const packed = run("npm", ["pack", "--pack-destination", project, "--json"], ROOT);
  // prepack (set-up and build) prints to stdout too; npm's JSON is the array at the end.
  const tarball = (JSON.parse(packed.slice(packed.search(/^\[\s*\{/m))) as { filename: string }[])[0].filename;
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
  run("npm", ["install", "--no-audit", "--no-fund", join(project, tarball)], project);
  run(join(ROOT, ".venv", "bin", "python"), ["-m", "venv", join(project, ".venv")], project);
  run(join(project, ".venv", "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", "./node_modules/procgrpc/python-worker"], project);
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

test("require('procgrpc') and import 'procgrpc' both work", () => {
  const cjs = run(process.execPath, ["-e", "const p = require('procgrpc'); console.log(typeof p.WorkerPool, p.Status.NOT_FOUND)"], project);
  expect(cjs.trim()).toBe("function 5");
  const esm = run(process.execPath, ["--input-type=module", "-e", "import { WorkerPool, RpcError } from 'procgrpc'; console.log(typeof WorkerPool, typeof RpcError)"], project);
  expect(esm.trim()).toBe("function function");
});

test("a project's own proto: npx procgrpc codegen, a Python servicer, a typed client", () => {
  mkdirSync(join(project, "proto", "shop", "v1"), { recursive: true });
  writeFileSync(
    join(project, "proto", "shop", "v1", "shop.proto"),
    `syntax = "proto3";
package shop.v1;
service PriceService {
  rpc Quote(QuoteRequest) returns (QuoteResponse);
}
message QuoteRequest { string sku = 1; int32 quantity = 2; }
message QuoteResponse { double total = 1; }
`,
  );
  const python = join(project, ".venv", "bin", "python");
  const out = run("npx", ["procgrpc", "codegen", "--proto", "proto", "--ts-out", "gen/ts", "--py-out", "gen/py", "--python", python, "--json"], project);
  expect(JSON.parse(out)).toMatchObject({ ok: true, protoFiles: 1 });

  writeFileSync(
    join(project, "worker.py"),
    `import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen", "py"))
from procgrpc import run_worker
from shop.v1 import shop_pb2, shop_pb2_grpc

class Prices(shop_pb2_grpc.PriceServiceServicer):
    def Quote(self, request, context):
        if request.quantity <= 0:
            raise ValueError("quantity must be positive")
        return shop_pb2.QuoteResponse(total=2.5 * request.quantity)

if __name__ == "__main__":
    run_worker((shop_pb2_grpc.add_PriceServiceServicer_to_server, Prices()))
`,
  );
  writeFileSync(
    join(project, "main.ts"),
    `import { WorkerPool, RpcError, Status, silentLogger } from "procgrpc";
import { PriceServiceDefinition } from "./gen/ts/shop/v1/shop";

async function main(): Promise<void> {
  const pool = new WorkerPool({ workers: 1, python: ${JSON.stringify(python)}, script: "worker.py", logger: silentLogger });
  await pool.start();
  try {
    const prices = pool.client(PriceServiceDefinition);
    const quote = await prices.quote({ sku: "apple", quantity: 4 });
    const total: number = quote.total;
    let code: Status | undefined;
    try {
      await prices.quote({ sku: "apple", quantity: 0 });
    } catch (err) {
      if (err instanceof RpcError) code = err.code();
    }
    console.log(JSON.stringify({ total, code: code === undefined ? null : Status[code] }));
  } finally {
    await pool.shutdown();
  }
}
void main();
`,
  );
  // Types flow from the generated stubs through the installed package's declarations.
  run(join(ROOT, "node_modules", ".bin", "tsc"), ["--noEmit", "--strict", "--module", "node16", "--moduleResolution", "node16", "--target", "es2022", "--skipLibCheck", "--types", "node", "--typeRoots", join(ROOT, "node_modules", "@types"), "main.ts"], project);
  const result = run(process.execPath, ["--import", join(ROOT, "node_modules", "tsx", "dist", "loader.mjs"), "main.ts"], project);
  expect(JSON.parse(result.trim())).toEqual({ total: 10, code: "INVALID_ARGUMENT" });
});
