// A benchmark that owns one section of docs/benchmarks.md: where its figures go, and the flags
// every such benchmark takes (`--quick`, `--out`, `--json`, `--render`).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
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
