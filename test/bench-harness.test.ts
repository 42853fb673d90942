// The benchmark harness must measure what it claims and fail loudly when a call fails; it is
// not a performance test (no timing is asserted here).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sequential, throughput } from "../bench/lib/measure";
import { objectsOver, slopePerMinute, type MemorySample } from "../bench/soak-memory";
import { roundRatios, verdict, type TargetRatio } from "../bench/target-rounds";
import { ROOT } from "./helpers/env";

jest.setTimeout(180_000);

test("the soak's memory verdict: live-RSS slope per minute, and per-worker objects over the limit", () => {
  const sample = (at: number, liveRss: number): MemorySample => ({ at, tookMs: 0, rss: 280, anonymous: 220, heapUsed: 20, heapCommitted: 160, external: 8, live: { rss: liveRss, anonymous: 50 } });
  // 1 MB per 30 s: 2 MB/min; with noise, about that (least squares, not first to last).
  expect(slopePerMinute([sample(300, 100), sample(330, 101), sample(360, 102), sample(390, 103)], (m) => m.live.rss)).toBe(2);
  expect(slopePerMinute([sample(300, 100), sample(330, 101.4), sample(360, 101.6), sample(390, 103)], (m) => m.live.rss)).toBeCloseTo(2, 0);
  expect(slopePerMinute([sample(300, 100), sample(330, 100), sample(360, 100)], (m) => m.live.rss)).toBe(0);
  // Too few samples for a trend: no verdict (NaN compares false against the bound).
  expect(slopePerMinute([sample(300, 100), sample(330, 140)], (m) => m.live.rss)).toBeNaN();
  expect(objectsOver({ WorkerProcess: 3, grpcChannel: 9, Pipeline: 4 }, 4)).toEqual(["grpcChannel: 9"]);
  expect(objectsOver(undefined, 4)).toEqual([]);
});

test("a round-by-round target takes each ratio within its round and judges the median", () => {
  const p50: TargetRatio = { name: "t", figure: "p50us", numerator: "a", denominator: "b", limit: 1, atMost: true, numeratorValues: [100, 300, 90], denominatorValues: [110, 200, 100] };
  // Rounds where the whole machine ran slower (the second) move both sides: ratios 0.91, 1.5, 0.9.
  expect(roundRatios(p50).map((r) => r.toFixed(2))).toEqual(["0.91", "1.50", "0.90"]);
  expect(verdict(p50)).toEqual({ median: 100 / 110, min: 0.9, max: 1.5, met: true });
  const load: TargetRatio = { ...p50, figure: "callsPerSec", limit: 0.6, atMost: false, numeratorValues: [30, 40], denominatorValues: [60, 60] };
  expect(verdict(load).met).toBe(true); // median of an even count: the upper middle (0.67)
  expect(verdict({ ...load, numeratorValues: [30, 30] }).met).toBe(false);
});

test("a failing call fails the measurement instead of being counted", async () => {
  let n = 0;
  const flaky = async (): Promise<void> => {
    if (++n === 7) throw new Error("call 7 failed");
  };
  await expect(sequential(flaky, 2, 10, [])).rejects.toThrow("call 7 failed");
  n = 0;
  await expect(throughput(flaky, 4, 0.2, [])).rejects.toThrow("call 7 failed");
});

test("npm run bench --quick (compiled) measures every path and writes the report; a broken setup exits non-zero", () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-harness-"));
  // Inside the repository (the compiled benchmarks find it above themselves), gitignored.
  const build = join(ROOT, `.bench-build-test-${process.pid}`);
  try {
    const out = join(dir, "benchmarks.md");
    const json = join(dir, "latest.json");
    // What `npm run bench` runs after setup: bench/ and src/ compiled with tsc, then the compiled run.js.
    const env = { ...process.env, PROCGRPC_BENCH_BUILD: build };
    const ok = spawnSync(process.execPath, [join(ROOT, "scripts", "bench.mjs"), "--quick", "--out", out, "--json", json], { cwd: ROOT, encoding: "utf8", env });
    expect(ok.status).toBe(0);
    const result = JSON.parse(readFileSync(json, "utf8")) as { latency: { path: string; calls: number }[]; load: { path: string }[]; large: { path: string; payload: number; calls: number }[]; startup: { coldStartMs: number }; targetRounds: { rounds: number; targets: TargetRatio[] } };
    const paths = ["procgrpc unary", "procgrpc pipelined", "procgrpc pipelined, gRPC stream", "raw grpc-js", "pyproc-style JSON", "socket floor (binary)", "bare gRPC stream, 1 message per call"];
    expect([...new Set(result.latency.map((r) => r.path))].sort()).toEqual([...paths].sort());
    expect([...new Set(result.load.map((r) => r.path))].sort()).toEqual([...paths].sort());
    expect(result.latency.every((r) => r.calls === 30)).toBe(true);
    // Large payloads: every path, procgrpc with its shared-memory lane for every message and off among them, at 1 MiB too.
    const largePaths = ["procgrpc (default transport)", "procgrpc, lane for every message", "procgrpc, sharedMemoryLane: false", "bare gRPC stream, 1 message per call", "socket floor (binary)", "pyproc-style JSON"];
    expect([...new Set(result.large.filter((r) => r.payload === 1 << 20).map((r) => r.path))].sort()).toEqual([...largePaths].sort());
    expect(result.large.every((r) => r.calls > 0)).toBe(true);
    expect(result.startup.coldStartMs).toBeGreaterThan(0);
    // The issue 15 targets, in interleaved rounds: both sides of each target measured in every round.
    expect(result.targetRounds.targets).toHaveLength(4);
    for (const t of result.targetRounds.targets) {
      expect(t.numeratorValues).toHaveLength(result.targetRounds.rounds);
      expect(t.denominatorValues).toHaveLength(result.targetRounds.rounds);
      expect([...t.numeratorValues, ...t.denominatorValues].every((v) => v > 0)).toBe(true);
    }
    const md = readFileSync(out, "utf8");
    for (const heading of ["## Targets", "## Issue 15 targets, round by round", "## Latency", "## Throughput", "## Large payloads", "## Cost of each feature", "## Start-up", "## Elastic pool", "## Stream messages through the shared-memory lane"]) expect(md).toContain(heading);
    const streams = JSON.parse(readFileSync(join(dir, "stream-lane.json"), "utf8")) as { rows: { kind: string; messageBytes: number }[] };
    expect(streams.rows.filter((r) => r.messageBytes === 1 << 20).map((r) => r.kind).sort()).toEqual(["client stream", "server stream"]);
    const elastic = JSON.parse(readFileSync(join(dir, "elastic.json"), "utf8")) as { rows: { scenario: string; rounds: number }[] };
    expect(elastic.rows.map((r) => r.scenario)).toEqual(expect.arrayContaining(["kill -9 → next call served, no spare (restart)", "kill -9 → next call served, 1 warm spare"]));

    // The same compiled run.js that scripts/bench.mjs just built and ran, without compiling again.
    const broken = spawnSync(process.execPath, ["--expose-gc", join(build, "bench", "run.js"), "--quick", "--out", join(dir, "x.md"), "--json", join(dir, "x.json")], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...env, PROCGRPC_PYTHON: "/nonexistent/python3" },
    });
    expect(broken.status).toBe(1);
    expect(broken.stderr).toContain("[bench] FAILED");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(build, { recursive: true, force: true });
  }
});
