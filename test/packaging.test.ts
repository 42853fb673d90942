// procgrpc as a user gets it: `npm pack`, then the README's "Your own service, step by step" run
// as written in fresh npm, pnpm and Yarn projects (the only change: `procgrpc` in the install
// line is the packed tarball), type-checked with TypeScript 7 and 5 as CommonJS and as ESM,
// and run. Also what the tarball, the wheel and the lock file hold.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ROOT } from "./helpers/env";

jest.setTimeout(600_000);

const PM_BIN = join(ROOT, ".tools", "pm", "node_modules", ".bin");
// The Node running the tests (the project's, see scripts/node.mjs) first, then pnpm and yarn.
const ENV = { ...process.env, PATH: `${dirname(process.execPath)}:${PM_BIN}:${process.env.PATH ?? ""}`, npm_config_loglevel: "error" };
const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

function run(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...ENV, ...env }, maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
const sh = (line: string, cwd: string): string => run("sh", ["-c", line], cwd);

/** The README's code blocks from "Your own service" through "TypeScript setup", in order. */
interface Block {
  lang: string;
  lines: string[];
}
function readmeBlocks(): Block[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("## Your own service, step by step");
  const end = readme.indexOf("\n## ", readme.indexOf("### TypeScript setup"));
  const blocks: Block[] = [];
  for (const m of readme.slice(start, end).matchAll(/^( *)```(\w+)\n([\s\S]*?)^\1```$/gm)) {
    blocks.push({ lang: m[2], lines: m[3].split("\n").map((l) => l.slice(m[1].length)).slice(0, -1) });
  }
  return blocks;
}

type Pm = "npm" | "pnpm" | "yarn";
const TARBALL_SPEC: Record<Pm, (tarball: string) => string> = { npm: (t) => t, pnpm: (t) => t, yarn: (t) => `file:${t}` };
const ADD_DEV: Record<Pm, string> = { npm: "npm install --save-dev", pnpm: "pnpm add --save-dev", yarn: "yarn add --dev" };

/** Writes the README's files, then runs its commands (the install block of `pm` only). */
function followReadme(pm: Pm, project: string, tarball: string): string {
  const blocks = readmeBlocks();
  const marker = /^(\/\/|#) ([\w./-]+\.(proto|py|ts|json))$/;
  for (const b of blocks) {
    const file = marker.exec(b.lines[0] ?? "");
    if (!file || b.lang === "sh") continue;
    mkdirSync(dirname(join(project, file[2])), { recursive: true });
    writeFileSync(join(project, file[2]), `${b.lines.join("\n")}\n`);
  }
  expect(["proto/shop/v1/shop.proto", "worker.py", "src/main.ts", "tsconfig.json"].filter((f) => !existsSync(join(project, f)))).toEqual([]);
  let output = "";
  for (const b of blocks.filter((x) => x.lang === "sh")) {
    const only = /^# (npm|pnpm|yarn)$/.exec(b.lines[0]);
    if (only && only[1] !== pm) continue;
    for (const line of b.lines.filter((l) => l.trim() && !l.startsWith("#"))) {
      // The package comes from the packed tarball, not the registry.
      const command = /^(npm install|pnpm add|yarn add) /.test(line) ? line.replace(/(?<=\s)procgrpc(?=\s|$)/, TARBALL_SPEC[pm](tarball)) : line;
      output += sh(command, project);
    }
  }
  return output;
}

let scratch: string;
let tarball: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "procgrpc-pkg-"));
  const packed = run("npm", ["pack", "--pack-destination", scratch, "--json"], ROOT);
  // prepack (set-up and build) prints to stdout too; npm's JSON is the array at the end.
  tarball = join(scratch, (JSON.parse(packed.slice(packed.search(/^\[\s*\{/m))) as { filename: string }[])[0].filename);
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("what ships", () => {
  test("the npm tarball: builds, bin, licence files, the wheel; no source maps, no sources", () => {
    const files = run("tar", ["-tzf", tarball], scratch).trim().split("\n").map((f) => f.replace(/^package\//, ""));
    for (const f of ["LICENSE", "NOTICE", "README.md", "CHANGELOG.md", "package.json", "bin/procgrpc.cjs", "dist/index.cjs", "dist/index.mjs", "dist/index.d.ts", "dist/index.d.mts", "dist/cli.cjs", `python/procgrpc-${version}-py3-none-any.whl`]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.endsWith(".map") || f.startsWith("src/") || f.includes("__pycache__") || f.startsWith("python-worker/"))).toEqual([]);
    const manifest = JSON.parse(run("tar", ["-xzOf", tarball, "package/package.json"], scratch)) as Record<string, unknown>;
    expect(manifest).toMatchObject({ license: "Apache-2.0", sideEffects: false, repository: { url: expect.stringContaining("github.com/procgrpc/procgrpc") }, homepage: expect.any(String), bugs: { url: expect.any(String) } });
    expect(Object.keys(manifest.dependencies as object).sort()).toEqual(["@bufbuild/protobuf", "@grpc/grpc-js", "@grpc/proto-loader", "@opentelemetry/api", "chokidar"]);
  });

  test("the wheel and the sdist: licence files, SPDX licence, grpcio-tools only in the codegen extra, the pinned generator's module", () => {
    const python = join(ROOT, ".venv", "bin", "python");
    const wheel = join(ROOT, "python", `procgrpc-${version}-py3-none-any.whl`);
    const sdist = join(ROOT, "python", `procgrpc-${version}.tar.gz`);
    const inspect = `
import json, sys, tarfile, zipfile
w = zipfile.ZipFile(sys.argv[1]); s = tarfile.open(sys.argv[2])
meta = w.read([n for n in w.namelist() if n.endswith(".dist-info/METADATA")][0]).decode()
print(json.dumps({"wheel": w.namelist(), "sdist": [m.name.split("/", 1)[1] for m in s.getmembers() if "/" in m.name], "meta": meta,
  "pb2": w.read("procgrpc/_services/_pipeline_pb2.py").decode().splitlines()[:4]}))`;
    const got = JSON.parse(run(python, ["-c", inspect, wheel, sdist], ROOT)) as { wheel: string[]; sdist: string[]; meta: string; pb2: string[] };
    expect(got.wheel).toEqual(expect.arrayContaining([`procgrpc-${version}.dist-info/licenses/LICENSE`, `procgrpc-${version}.dist-info/licenses/NOTICE`, "procgrpc/_services/_pipeline_pb2.py", "procgrpc/py.typed"]));
    expect(got.sdist).toEqual(expect.arrayContaining(["LICENSE", "NOTICE", "pyproject.toml"]));
    expect(got.meta).toMatch(/^License-Expression: Apache-2.0$/m);
    expect(got.meta).toMatch(/^Requires-Python: >=3.10$/m);
    expect(got.meta).toMatch(/^Project-URL: Repository, https:\/\/github.com\/procgrpc\/procgrpc/m);
    const requires = got.meta.split("\n").filter((l) => l.startsWith("Requires-Dist: grpcio-tools"));
    expect(requires.length).toBeGreaterThan(0);
    expect(requires.every((l) => l.includes('extra == "codegen"'))).toBe(true);
    // Generated by the pinned grpcio-tools (protoc 25): no gencode/runtime version check.
    expect(got.pb2.join("\n")).toContain("Protobuf Python Version: 4.25.");
  });

  test("the repository's and every artifact's LICENSE and NOTICE are the same files", () => {
    for (const f of ["LICENSE", "NOTICE"]) expect(readFileSync(join(ROOT, "python-worker", f), "utf8")).toBe(readFileSync(join(ROOT, f), "utf8"));
    expect(run("tar", ["-xzOf", tarball, "package/LICENSE"], scratch)).toBe(readFileSync(join(ROOT, "LICENSE"), "utf8"));
  });

  test.each([
    ["linux", "x64"],
    ["linux", "arm64"],
    ["darwin", "arm64"],
    ["darwin", "x64"],
    ["win32", "x64"],
  ])("npm ci accepts the lock file on %s-%s (a clean checkout)", (os, cpu) => {
    const checkout = mkdtempSync(join(scratch, "ci-"));
    for (const f of ["package.json", "package-lock.json"]) cpSync(join(ROOT, f), join(checkout, f));
    run("npm", ["ci", "--dry-run", "--ignore-scripts", "--no-audit", "--no-fund", `--os=${os}`, `--cpu=${cpu}`], checkout);
  });
});

describe.each(["npm", "pnpm", "yarn"] as const)("a new %s project, following the README", (pm) => {
  let project: string;
  let readmeOutput: string;
  beforeAll(() => {
    project = join(scratch, `${pm}-project`);
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), `${JSON.stringify({ name: "shop", version: "1.0.0", private: true }, null, 2)}\n`);
    readmeOutput = followReadme(pm, project, tarball);
  });

  const expectShopOutput = (out: string): void => {
    expect(out).toContain("4 apples: 10");
    expect(out).toContain("refused: quantity must be positive");
  };

  test("the README's commands, as written: install, wheel, codegen, tsc (7.x, CommonJS), run", () => {
    expectShopOutput(readmeOutput);
    expect(run(join(project, "node_modules", ".bin", "tsc"), ["--version"], project)).toMatch(/^Version 7\./);
    // The generated client's runtime is the project's own dependency, as the README says.
    expect(existsSync(join(project, "node_modules", "@bufbuild", "protobuf", "package.json"))).toBe(true);
  });

  test("the same sources as ESM, and type-checked with TypeScript 5.x too; tsc --init's configuration (7.x) in an ES module project", () => {
    sh(`${ADD_DEV[pm]} typescript5@npm:typescript@5`, project);
    const tsc5 = join(project, "node_modules", "typescript5", "bin", "tsc");
    expect(run(process.execPath, [tsc5, "--version"], project)).toMatch(/^Version 5\./);
    run(process.execPath, [tsc5, "--noEmit", "-p", "."], project);

    const esm = join(project, "esm");
    mkdirSync(esm);
    writeFileSync(join(esm, "package.json"), `${JSON.stringify({ private: true, type: "module" })}\n`);
    cpSync(join(project, "tsconfig.json"), join(esm, "tsconfig.json"));
    cpSync(join(project, "src"), join(esm, "src"), { recursive: true });
    run(join(project, "node_modules", ".bin", "tsc"), ["-p", "esm"], project);
    run(process.execPath, [tsc5, "--noEmit", "-p", "esm"], project);
    expect(readFileSync(join(esm, "dist", "main.js"), "utf8")).toMatch(/^import /m);
    // Run from the project root, so the pool's relative python and script resolve as before.
    expectShopOutput(run(process.execPath, [join("esm", "dist", "main.js")], project));

    const init = join(project, "esm-init");
    mkdirSync(init);
    writeFileSync(join(init, "package.json"), `${JSON.stringify({ private: true, type: "module" })}\n`);
    run(join(project, "node_modules", ".bin", "tsc"), ["--init"], init);
    expect(readFileSync(join(init, "tsconfig.json"), "utf8")).toMatch(/"verbatimModuleSyntax": true/);
    cpSync(join(project, "src"), join(init, "src"), { recursive: true });
    run(join(project, "node_modules", ".bin", "tsc"), ["--noEmit", "-p", "."], init);
  });

  if (pm === "npm") {
    test("a worker-only virtualenv (no codegen extra) has no grpcio-tools and serves the pool", () => {
      const venv = join(project, ".venv-worker");
      sh("python3 -m venv .venv-worker", project);
      sh('.venv-worker/bin/pip install --quiet --disable-pip-version-check "$(npx procgrpc wheel)"', project);
      const installed = run(join(venv, "bin", "python"), ["-m", "pip", "list", "--format=json", "--disable-pip-version-check"], project);
      expect((JSON.parse(installed) as { name: string }[]).map((d) => d.name.toLowerCase())).not.toContain("grpcio-tools");
      writeFileSync(
        join(project, "worker-only.cjs"),
        `const { WorkerPool, silentLogger } = require("procgrpc");
const { PriceServiceDefinition } = require("./dist/gen/shop/v1/shop.js");
(async () => {
  const pool = new WorkerPool({ python: ".venv-worker/bin/python", script: "worker.py", logger: silentLogger });
  await pool.start();
  try { console.log((await pool.client(PriceServiceDefinition).quote({ sku: "pear", quantity: 2 })).total); } finally { await pool.shutdown(); }
})();
`,
      );
      expect(run(process.execPath, ["worker-only.cjs"], project).trim()).toBe("5");
    });

    test("import loads no more of grpc-js than its Metadata (the same class in CommonJS and ESM); the first pool loads the rest", () => {
      const probe = (entry: string) =>
        `const all = () => Object.keys(require.cache).some((k) => k.endsWith(\`@grpc\${require("path").sep}grpc-js\${require("path").sep}build\${require("path").sep}src\${require("path").sep}index.js\`));
${entry}
  const grpc = require("@grpc/grpc-js");
  console.log(JSON.stringify({ before, same: procgrpc.Metadata === grpc.Metadata, md: new procgrpc.Metadata() instanceof grpc.Metadata }));
})();`;
      writeFileSync(join(project, "lazy.cjs"), probe(`(async () => {\n  const procgrpc = require("procgrpc");\n  const before = all();`));
      writeFileSync(join(project, "lazy.mjs"), `import { createRequire } from "node:module";\nconst require = createRequire(import.meta.url);\n` +
        probe(`(async () => {\n  const procgrpc = await import("procgrpc");\n  const before = all();`));
      for (const file of ["lazy.cjs", "lazy.mjs"]) {
        expect(JSON.parse(run(process.execPath, [file], project))).toEqual({ before: false, same: true, md: true });
      }
      const started = run(process.execPath, ["-e", `const { WorkerPool, silentLogger } = require("procgrpc");
const loaded = () => Object.keys(require.cache).some((k) => k.includes("grpc-js") && k.endsWith("channel.js"));
const pool = new WorkerPool({ python: ".venv-worker/bin/python", script: "worker.py", logger: silentLogger });
pool.start().then(() => console.log(loaded())).finally(() => pool.shutdown());`], project);
      expect(started.trim()).toBe("true");
    });

    test("startPrometheusEndpoint without its optional peer says what to install", () => {
      const out = spawnSync(process.execPath, ["-e", 'require("procgrpc").startPrometheusEndpoint({ port: 0 }).catch((e) => { console.log(e.message); })'], { cwd: project, encoding: "utf8", env: ENV });
      expect(out.stdout).toContain("npm install @opentelemetry/exporter-prometheus");
    });

    test("procgrpc codegen: a missing --python and a missing --proto are named with the path tried", () => {
      const missingPython = spawnSync("npx", ["procgrpc", "codegen", "--proto", "proto", "--ts-out", "x", "--python", "no-venv/bin/python"], { cwd: project, encoding: "utf8", env: ENV });
      expect(missingPython.status).toBe(1);
      expect(missingPython.stderr).toContain(join(project, "no-venv", "bin", "python"));
      const missingProto = spawnSync("npx", ["procgrpc", "codegen", "--proto", "protos", "--ts-out", "x", "--python", ".venv/bin/python"], { cwd: project, encoding: "utf8", env: ENV });
      expect(missingProto.status).toBe(1);
      expect(missingProto.stderr).toContain(join(project, "protos"));
    });
  }
});
