// What installing procgrpc costs a user: node_modules size of a fresh `npm install` of the packed
// tarball (alone, and with the optional metrics peers), the time `require`/`import` of procgrpc
// adds to a bare `node`, and a worker virtualenv made from the shipped wheel (without the
// codegen extra, and with it). Writes its own section of docs/benchmarks.md (between the
// install-footprint markers) and bench/results/install-footprint.json.
//   npx tsx bench/install-footprint.ts [--out docs/benchmarks.md] [--json bench/results/latest.json] [--render <json>]
// Imported by bench/run.ts, it measures synchronously while being imported (before the main
// benchmark starts, so the two never share the CPU) and writes its section when the process exits.
// With --quick it measures nothing (the tarball install takes a minute).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { sectionFlags, sectionMarkers, writeMarkedSection, type SectionFlags } from "./lib/doc-section";
import { repoRoot } from "./lib/paths";

const root = repoRoot;
const MARKERS = sectionMarkers("install-footprint");
const IMPORT_RUNS = 15;

/** One `npm install` into an empty project. */
export interface InstallRow {
  what: string;
  packages: number;
  /** Sum of file sizes (what `du --apparent-size` counts). */
  bytes: number;
  /** Disk blocks used (what `du` counts). */
  diskBytes: number;
  /** Copies of each @opentelemetry package (more than 1 is a duplicate). */
  otelCopies: Record<string, number>;
}

/** Wall times of `node <script>` over repeated runs, in ms. */
export interface ImportRow {
  what: string;
  minMs: number;
  medianMs: number;
  /** Median of (run − the bare-node run made right before it). */
  overBareMedianMs: number;
  rssMiB: number;
}

/** One worker virtualenv made from the wheel. */
export interface VenvRow {
  what: string;
  distributions: string[];
  sitePackagesBytes: number;
  hasGrpcioTools: boolean;
}

export interface FootprintResult {
  date: string;
  load: string;
  node: string;
  python: string;
  tarballBytes: number;
  tarballFiles: number;
  installs: InstallRow[];
  imports: ImportRow[];
  bareNodeMedianMs: number;
  venvs: VenvRow[];
}

const log = (msg: string): void => void process.stderr.write(`[bench footprint] ${msg}\n`);

function run(cmd: string, args: readonly string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
}

function sizes(dir: string): { bytes: number; diskBytes: number } {
  let bytes = 0;
  let diskBytes = 0;
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isSymbolicLink()) continue;
      const st = statSync(p);
      diskBytes += st.blocks * 512;
      if (entry.isDirectory()) walk(p);
      else bytes += st.size;
    }
  };
  walk(dir);
  return { bytes, diskBytes };
}

function packageDirs(nodeModules: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      if (name.startsWith(".")) continue;
      const p = join(dir, name);
      if (name.startsWith("@")) {
        for (const scoped of readdirSync(p)) {
          out.push(join(p, scoped));
          walk(join(p, scoped, "node_modules"));
        }
      } else {
        out.push(p);
        walk(join(p, "node_modules"));
      }
    }
  };
  walk(nodeModules);
  return out;
}

function install(what: string, tarball: string, extra: readonly string[]): InstallRow {
  const project = mkdtempSync(join(tmpdir(), "pgfoot-npm-"));
  try {
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "footprint", version: "1.0.0", private: true }));
    run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", tarball, ...extra], project);
    const nodeModules = join(project, "node_modules");
    const dirs = packageDirs(nodeModules);
    const otelCopies: Record<string, number> = {};
    for (const d of dirs.filter((p) => p.includes("@opentelemetry"))) {
      const name = `@opentelemetry/${d.split("@opentelemetry/").pop()}`;
      otelCopies[name] = (otelCopies[name] ?? 0) + 1;
    }
    const row = { what, packages: dirs.length, ...sizes(nodeModules), otelCopies };
    log(`${what}: ${row.packages} packages, ${(row.diskBytes / 2 ** 20).toFixed(1)} MiB on disk`);
    return row;
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}

function nodeRun(project: string, script: string): { ms: number; rss: number } {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [script], { cwd: project, encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`node ${script} failed: ${r.stderr}`);
  return { ms, rss: Number(r.stdout.trim() || 0) };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function importTimes(tarball: string): { rows: ImportRow[]; bare: number } {
  const project = mkdtempSync(join(tmpdir(), "pgfoot-import-"));
  try {
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "footprint", version: "1.0.0", private: true }));
    run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", tarball], project);
    const rss = "process.stdout.write(String(process.memoryUsage().rss))";
    writeFileSync(join(project, "bare.cjs"), `${rss}\n`);
    writeFileSync(join(project, "require.cjs"), `require("procgrpc");\n${rss}\n`);
    writeFileSync(join(project, "import.mjs"), `import "procgrpc";\n${rss}\n`);
    const scripts = [
      { what: 'require("procgrpc") (CommonJS)', file: "require.cjs" },
      { what: 'import "procgrpc" (ESM)', file: "import.mjs" },
    ];
    for (const f of ["bare.cjs", ...scripts.map((s) => s.file)]) nodeRun(project, f); // warm the page cache
    const bare: number[] = [];
    const samples = scripts.map(() => ({ ms: [] as number[], over: [] as number[], rss: [] as number[] }));
    // Interleaved, each run right after a bare run, so load drifts hit both alike.
    for (let i = 0; i < IMPORT_RUNS; i++) {
      scripts.forEach((s, k) => {
        const b = nodeRun(project, "bare.cjs").ms;
        bare.push(b);
        const r = nodeRun(project, s.file);
        samples[k].ms.push(r.ms);
        samples[k].over.push(r.ms - b);
        samples[k].rss.push(r.rss);
      });
    }
    const rows = scripts.map((s, k) => ({
      what: s.what,
      minMs: Math.min(...samples[k].ms),
      medianMs: median(samples[k].ms),
      overBareMedianMs: median(samples[k].over),
      rssMiB: median(samples[k].rss) / 2 ** 20,
    }));
    for (const r of rows) log(`${r.what}: median ${r.medianMs.toFixed(0)} ms, ${r.overBareMedianMs.toFixed(0)} ms over bare node`);
    return { rows, bare: median(bare) };
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}

function venv(what: string, python: string, requirement: string): VenvRow {
  const dir = mkdtempSync(join(tmpdir(), "pgfoot-venv-"));
  try {
    run(python, ["-m", "venv", dir], dir);
    const venvPython = join(dir, "bin", "python");
    run(venvPython, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:", requirement], dir);
    const listed = JSON.parse(run(venvPython, ["-m", "pip", "list", "--format", "json", "--disable-pip-version-check"], dir)) as { name: string; version: string }[];
    const distributions = listed.map((d) => `${d.name} ${d.version}`).sort((a, b) => a.localeCompare(b));
    const site = run(venvPython, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], dir).trim();
    const row = { what, distributions, sitePackagesBytes: sizes(site).diskBytes, hasGrpcioTools: listed.some((d) => d.name.toLowerCase() === "grpcio-tools") };
    log(`${what}: ${distributions.length} distributions, ${(row.sitePackagesBytes / 2 ** 20).toFixed(1)} MiB site-packages`);
    return row;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Packs procgrpc (npm pack: prepack builds dist/ and the wheel) and measures it. */
export function measureFootprint(): FootprintResult {
  const load = existsSync("/proc/loadavg") ? readFileSync("/proc/loadavg", "utf8").trim() : "?";
  const scratch = mkdtempSync(join(tmpdir(), "pgfoot-"));
  try {
    log("npm pack");
    const packed = run("npm", ["pack", "--pack-destination", scratch, "--json", "--loglevel=error"], root);
    const info = (JSON.parse(packed.slice(packed.search(/^\[\s*\{/m))) as { filename: string; size: number; files: unknown[] }[])[0];
    const tarball = join(scratch, info.filename);
    const installs = [
      install("npm install procgrpc", tarball, []),
      install("… + @opentelemetry/exporter-prometheus (for startPrometheusEndpoint; brings the metrics SDK)", tarball, ["@opentelemetry/exporter-prometheus"]),
      install("… + ts-proto @bufbuild/protobuf (for procgrpc codegen and its output)", tarball, ["ts-proto", "@bufbuild/protobuf"]),
    ];
    const { rows: imports, bare } = importTimes(tarball);
    const python = process.env.PROCGRPC_PYTHON ?? join(root, ".venv", "bin", "python");
    const wheel = join(root, "python", readdirSync(join(root, "python")).find((f) => f.endsWith(".whl")) ?? "missing.whl");
    const venvs = [venv("worker virtualenv: pip install <wheel>", python, wheel), venv("codegen virtualenv: pip install <wheel>[codegen]", python, `${wheel}[codegen]`)];
    const pythonVersion = run(python, ["-c", "import sys; print(sys.version.split()[0])"], root).trim();
    return { date: new Date().toISOString(), load, node: process.version, python: pythonVersion, tarballBytes: info.size, tarballFiles: info.files.length, installs, imports, bareNodeMedianMs: bare, venvs };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** The markdown section (between the markers). */
export function renderFootprintSection(r: FootprintResult): string {
  const lean = r.venvs[0];
  return [
    MARKERS.start,
    "## Install footprint and import time",
    "",
    `Measured ${r.date} (load average ${r.load}) by \`bench/install-footprint.ts\` with Node ${r.node} and Python ${r.python}:`,
    `\`npm pack\` (${(r.tarballBytes / 1024).toFixed(0)} KiB, ${r.tarballFiles} files), then \`npm install\` of the tarball into empty projects, and`,
    "virtualenvs made from the wheel the tarball ships. Targets: node_modules ≤ 30 MB, `import` ≤ 80 ms over a bare `node`,",
    "no grpcio-tools in a worker virtualenv.",
    "",
    "| install | packages | on disk | file bytes | OpenTelemetry copies |",
    "|---|---:|---:|---:|---|",
    ...r.installs.map((i) => `| ${i.what} | ${i.packages} | ${mib(i.diskBytes)}${i === r.installs[0] ? (i.diskBytes <= 30e6 ? " (≤ 30 MB: met)" : " (≤ 30 MB: missed)") : ""} | ${mib(i.bytes)} | ${Object.entries(i.otelCopies).map(([k, v]) => `${k.replace("@opentelemetry/", "")} ×${v}`).join(", ") || "none"} |`),
    "",
    `| startup (${IMPORT_RUNS} runs each, interleaved with a bare \`node\`, median ${r.bareNodeMedianMs.toFixed(0)} ms) | min | median | median over bare node | ≤ 80 ms over bare | RSS |`,
    "|---|---:|---:|---:|---|---:|",
    ...r.imports.map((i) => `| ${i.what} | ${i.minMs.toFixed(0)} ms | ${i.medianMs.toFixed(0)} ms | ${i.overBareMedianMs.toFixed(0)} ms | ${i.overBareMedianMs <= 80 ? "met" : "missed"} | ${i.rssMiB.toFixed(0)} MiB |`),
    "",
    "| virtualenv | distributions | site-packages | grpcio-tools |",
    "|---|---:|---:|---|",
    ...r.venvs.map((v) => `| ${v.what} | ${v.distributions.length} | ${mib(v.sitePackagesBytes)} | ${v.hasGrpcioTools ? "yes" : "no"} |`),
    "",
    `The worker virtualenv holds: ${lean.distributions.join(", ")}.`,
    "",
    "`import` loads none of @grpc/grpc-js but its `Metadata` module (`@grpc/grpc-js/build/src/metadata.js`, the",
    "same class object grpc-js exports); the rest of grpc-js, about 70 ms here, loads with the first pool's or",
    "remote target's channel. `@bufbuild/protobuf`'s root entry and `/wkt` (the hang watchdog's introspection) and",
    "`@grpc/proto-loader` with protobufjs (`dynamicClient`) also load on first use. Before grpc-js was deferred",
    "(commit 35fae9a, same machine and Node): `require` 84 / 89 ms and `import` 104 / 112 ms over a bare `node`.",
    "The metrics SDK and the Prometheus exporter are no longer loaded by `import` at all.",
    "",
    "Before this (commit cb670da, measured once here with the same Node): `npm install procgrpc` gave",
    "163 MB of node_modules (the `buf` binary, ts-proto's formatter, the metrics SDK twice), and in a",
    "paired run of 20 `require(\"procgrpc\")` each the new package took 0.67× the old one's wall time",
    "(medians 202 ms and 295 ms; bare node 34 ms) and 78 MiB instead of 85 MiB peak memory.",
    MARKERS.end,
  ].join("\n");
}



function save(f: SectionFlags, result: FootprintResult): void {
  mkdirSync(dirname(f.json), { recursive: true });
  writeFileSync(f.json, JSON.stringify(result, null, 2));
  mkdirSync(dirname(f.out), { recursive: true });
  writeMarkedSection(f.out, MARKERS, renderFootprintSection(result));
  log(`wrote its section of ${f.out} and ${f.json}`);
}

const f = sectionFlags(root, "install-footprint");
if (f.render) {
  if (existsSync(f.render)) {
    const saved = JSON.parse(readFileSync(f.render, "utf8")) as FootprintResult;
    if (require.main === module) writeMarkedSection(f.out, MARKERS, renderFootprintSection(saved));
    else process.on("exit", () => writeMarkedSection(f.out, MARKERS, renderFootprintSection(saved)));
  }
} else if (!f.quick) {
  const result = measureFootprint();
  if (require.main === module) save(f, result);
  // Imported by bench/run.ts: it rewrites the whole report, so add this section at the very end.
  else process.on("exit", () => (process.exitCode ? undefined : save(f, result)));
} else {
  log("--quick: not measured (a packed install takes about a minute)");
}
