// Turns a `node --cpu-prof` profile into a per-call cost breakdown (issue 15 §2).
//   npx tsx bench/profile/summarize-cpuprofile.ts PROFILE.cpuprofile RUN.json [TOP]
// RUN.json is small-calls.ts's output line: its calls and measured window (samples outside the
// window, i.e. start-up and warm-up, are left out).
// Every sample is charged to its innermost frame that is someone's code — procgrpc (src/),
// generated codecs (src/gen, @bufbuild/protobuf), grpc-js, the bench harness — so that Node
// built-ins a layer calls (timers, crypto, Buffer, promises) count for the layer that called them.
// Samples with no such frame are Node's own I/O (node:internal, http2 callbacks), GC, or idle.
import { readFileSync } from "node:fs";

interface Frame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: Frame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

function owner(url: string): string | undefined {
  if (url.includes("/src/gen/") || url.includes("@bufbuild/protobuf")) return "protobuf codec (ts-proto, @bufbuild/protobuf)";
  if (url.includes("/node_modules/@grpc/grpc-js/")) return "grpc-js";
  if (url.includes("/node_modules/@opentelemetry/")) return "opentelemetry";
  if (/\/src\/.*\.ts$/.test(url) || url.includes("/dist/index")) return "procgrpc (src/)";
  if (url.includes("/bench/")) return "bench harness";
  return undefined;
}

function nativeCategory(f: Frame): string {
  if (f.functionName === "(garbage collector)") return "GC";
  if (f.functionName === "(idle)") return "idle";
  if (f.functionName === "(program)") return "(program): native, unattributed";
  if (f.url.includes("node:internal/http2") || f.url.includes("node:http2")) return "node:http2 (JS)";
  if (f.url.startsWith("node:")) return "other Node internals (timers, streams, net)";
  return "other";
}

function main(): void {
  const [path, runArg, topArg] = process.argv.slice(2);
  const run = JSON.parse(readFileSync(runArg, "utf8").trim().split("\n").pop() as string) as { calls: number; windowStartUs?: number; windowEndUs?: number };
  const calls = run.calls;
  const top = Number(topArg ?? 25);
  const p = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const layer = new Map<string, number>();
  const charged = new Map<string, number>();
  const self = new Map<string, number>();
  let total = 0;
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    if (run.windowStartUs !== undefined && (at < run.windowStartUs || at > (run.windowEndUs as number))) continue;
    const leaf = byId.get(p.samples[i]) as ProfileNode;
    total += dt;
    const key = (f: Frame): string => `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(src|node_modules|bench)\//, "$1/")}:${f.lineNumber + 1}`;
    self.set(key(leaf.callFrame), (self.get(key(leaf.callFrame)) ?? 0) + dt);
    let id: number | undefined = leaf.id;
    let found: { name: string; frame: Frame } | undefined;
    while (id !== undefined) {
      const n = byId.get(id) as ProfileNode;
      const o = owner(n.callFrame.url);
      if (o) {
        found = { name: o, frame: n.callFrame };
        break;
      }
      id = parent.get(id);
    }
    const cat = found ? found.name : nativeCategory(leaf.callFrame);
    layer.set(cat, (layer.get(cat) ?? 0) + dt);
    if (found) charged.set(key(found.frame), (charged.get(key(found.frame)) ?? 0) + dt);
  }
  const busy = total - (layer.get("idle") ?? 0);
  const per = (us: number): string => (calls > 0 ? `${(us / calls).toFixed(2)} µs/call` : "");
  const pct = (us: number): string => `${((us / busy) * 100).toFixed(1)}%`;
  const sorted = (m: Map<string, number>): [string, number][] => [...m.entries()].sort((a, b) => b[1] - a[1]);
  process.stdout.write(`profile ${path}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy, ${calls} calls → ${per(busy)} busy\n\n`);
  process.stdout.write("| layer (charged with the built-ins it calls) | share of busy time | per call |\n|---|---|---|\n");
  for (const [k, v] of sorted(layer)) if (k !== "idle") process.stdout.write(`| ${k} | ${pct(v)} | ${per(v)} |\n`);
  process.stdout.write(`\nTop ${top} frames by charged time (innermost owned frame):\n`);
  for (const [k, v] of sorted(charged).slice(0, top)) process.stdout.write(`  ${pct(v).padStart(6)}  ${per(v).padStart(16)}  ${k}\n`);
  process.stdout.write(`\nTop ${top} frames by self time:\n`);
  for (const [k, v] of sorted(self).slice(0, top)) process.stdout.write(`  ${pct(v).padStart(6)}  ${per(v).padStart(16)}  ${k}\n`);
}

main();
