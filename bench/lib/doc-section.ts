// A benchmark that owns one section of docs/benchmarks.md: where its figures go, and the flags
// every such benchmark takes (`--quick`, `--out`, `--json`, `--render`).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";

/** The start and end markers that delimit a benchmark's own section of a Markdown file. */
export interface SectionMarkers {
  readonly start: string;
  readonly end: string;
}

/** The markers of section `name`: `<!-- name:start -->` … `<!-- name:end -->`. */
export function sectionMarkers(name: string): SectionMarkers {
  return { start: `<!-- ${name}:start -->`, end: `<!-- ${name}:end -->` };
}

/** Puts `section` (which includes its markers) into `out`, replacing an earlier one, or appends it. */
export function writeMarkedSection(out: string, markers: SectionMarkers, section: string): void {
  const text = existsSync(out) ? readFileSync(out, "utf8") : "";
  const start = text.indexOf(markers.start);
  const end = text.indexOf(markers.end);
  const next =
    start >= 0 && end > start
      ? text.slice(0, start) + section + text.slice(end + markers.end.length)
      : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(out, next);
}

/** Where a section benchmark reads and writes, from the command line shared with bench/run.ts. */
export interface SectionFlags {
  readonly quick: boolean;
  /** The Markdown file the section goes into (docs/benchmarks.md by default). */
  readonly out: string;
  /** The benchmark's own JSON result, beside the run's `--json` file. */
  readonly json: string;
  /** With `--render`: the saved JSON result to render instead of measuring. */
  readonly render?: string;
}

/** Parses the shared flags; the JSON result of benchmark `name` is `<name>.json` beside `--json`. */
export function sectionFlags(root: string, name: string): SectionFlags {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: false,
    options: { quick: { type: "boolean" }, out: { type: "string" }, json: { type: "string" }, render: { type: "string" } },
  });
  const json = typeof values.json === "string" ? values.json : join(root, "bench", "results", "latest.json");
  return {
    quick: values.quick === true,
    out: typeof values.out === "string" ? values.out : join(root, "docs", "benchmarks.md"),
    json: join(dirname(json), `${name}.json`),
    ...(typeof values.render === "string" ? { render: join(dirname(values.render), `${name}.json`) } : {}),
  };
}

/** A benchmark that measures once and owns one section of docs/benchmarks.md. */
export interface SectionBench<R> {
  /** The section's name: its markers and its `<name>.json` result. */
  readonly name: string;
  /** What the failure message calls it ("dead-letter replay"). */
  readonly title: string;
  readonly root: string;
  readonly measure: (quick: boolean) => Promise<R>;
  readonly render: (result: R) => string;
  readonly log: (msg: string) => void;
}

async function runSection<R>(bench: SectionBench<R>): Promise<void> {
  const f = sectionFlags(bench.root, bench.name);
  const markers = sectionMarkers(bench.name);
  if (f.render) {
    if (existsSync(f.render)) writeMarkedSection(f.out, markers, bench.render(JSON.parse(readFileSync(f.render, "utf8")) as R));
    return;
  }
  const result = await bench.measure(f.quick);
  mkdirSync(dirname(f.json), { recursive: true });
  writeFileSync(f.json, JSON.stringify(result, null, 2));
  mkdirSync(dirname(f.out), { recursive: true });
  writeMarkedSection(f.out, markers, bench.render(result));
  bench.log(`wrote its section of ${f.out} and ${f.json}`);
}

function failed(bench: SectionBench<unknown>, err: unknown): never {
  process.stderr.write(`[bench] FAILED: ${bench.title}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}

const queued: SectionBench<unknown>[] = [];

/**
 * Runs a section benchmark: at once when its file is the command (`isMain`); when bench/run.ts
 * imported it, after run.ts's own work, once the event loop is empty (`beforeExit`), the sections
 * one after another in import order, so none shares the CPU with another measurement. A failed
 * main run (exit code set) skips them; a failing section exits 1.
 */
export function scheduleSection<R>(bench: SectionBench<R>, isMain: boolean): void {
  if (isMain) {
    runSection(bench).catch((err: unknown) => failed(bench as SectionBench<unknown>, err));
    return;
  }
  queued.push(bench as SectionBench<unknown>);
  if (queued.length > 1) return;
  let started = false;
  process.on("beforeExit", () => {
    if (started || process.exitCode) return;
    started = true;
    void (async () => {
      for (const next of queued) await runSection(next).catch((err: unknown) => failed(next, err));
    })();
  });
}
