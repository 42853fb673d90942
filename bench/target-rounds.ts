// The ratio targets of issue 15, measured in interleaved rounds: in every round each target's two
// paths run back to back (the order alternates from round to round), and the ratio is taken within
// the round. This machine's speed drifts by more than the targets' margins over the minutes one
// pass of the whole matrix takes (a floor measured at 2.9 ms in one run and 1.1 ms in another), so
// a ratio of two figures taken minutes apart says more about the drift than about procgrpc. The
// report gives the median of the per-round ratios and their range. Called by bench/run.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkerPool, silentLogger } from "../src";
import { BenchServiceDefinition } from "../src/gen/bench/v1/bench";
import { bareStreamCall } from "./lib/bare-stream";
import { startComparisonServers } from "./lib/comparison-servers";
import { median, sequential, throughput, type Call } from "./lib/measure";
import { binaryPeerCall, jsonPeerCall, type PeerServer } from "./lib/peer-clients";

/** One target: `numerator / denominator` of `figure`, against `limit`. */
export interface TargetRatio {
  name: string;
  figure: "p50us" | "callsPerSec";
  numerator: string;
  denominator: string;
  limit: number;
  atMost: boolean;
  /** The two paths' figures, round by round. */
  numeratorValues: number[];
  denominatorValues: number[];
}

/** The ratios of one target, round by round. */
export function roundRatios(t: TargetRatio): number[] {
  return t.numeratorValues.map((v, i) => v / t.denominatorValues[i]);
}

/** Median of the per-round ratios, and whether it meets the target. */
export function verdict(t: TargetRatio): { median: number; min: number; max: number; met: boolean } {
  const ratios = roundRatios(t);
  const m = median(ratios);
  return { median: m, min: Math.min(...ratios), max: Math.max(...ratios), met: t.atMost ? m <= t.limit : m >= t.limit };
}

interface Plan {
  name: string;
  figure: TargetRatio["figure"];
  payload: number;
  numerator: string;
  denominator: string;
  limit: number;
  atMost: boolean;
  /** Measures one path once (one round's figure). */
  measure: (call: Call, pids: number[]) => Promise<number>;
}

/**
 * Runs `rounds` rounds of the issue 15 targets against procgrpc's default pool (1 worker, no
 * transport option: the pipelined transport and its shared-memory lane).
 */
export async function measureTargetRounds(opts: { python: string; benchWorker: string; quick: boolean; log: (msg: string) => void }): Promise<{ rounds: number; targets: TargetRatio[] }> {
  const rounds = opts.quick ? 2 : 7;
  const seconds = opts.quick ? 0.2 : 2;
  const seq = (warmup: number, samples: number) => async (call: Call, pids: number[]): Promise<number> =>
    (await sequential(call, opts.quick ? 5 : warmup, opts.quick ? 10 : samples, pids)).p50us;
  const load = async (call: Call, pids: number[]): Promise<number> => (await throughput(call, 64, seconds, pids)).callsPerSec;
  const plans: Plan[] = [
    { name: "pipelined vs bare gRPC stream (1 message per call), 16 B p50 ≤ 1.10×", figure: "p50us", payload: 16, numerator: "procgrpc (default transport)", denominator: "bare gRPC stream, 1 message per call", limit: 1.1, atMost: true, measure: seq(1000, 2000) },
    { name: "pipelined vs pyproc-style JSON, 16 B throughput at concurrency 64 ≥ 0.6× (stretch ≥ 1×)", figure: "callsPerSec", payload: 16, numerator: "procgrpc (default transport)", denominator: "pyproc-style JSON", limit: 0.6, atMost: false, measure: load },
    { name: "1 MiB round trip vs the binary socket floor ≤ 1.0×", figure: "p50us", payload: 1 << 20, numerator: "procgrpc (default transport)", denominator: "socket floor (binary)", limit: 1, atMost: true, measure: seq(20, 100) },
    { name: "16 MiB round trip vs the binary socket floor ≤ 1.0×", figure: "p50us", payload: 16 << 20, numerator: "procgrpc (default transport)", denominator: "socket floor (binary)", limit: 1, atMost: true, measure: seq(3, 12) },
  ];
  const dir = mkdtempSync(join(tmpdir(), "pgbench-targets-"));
  const pool = new WorkerPool({ workers: 1, python: opts.python, script: opts.benchWorker, logger: silentLogger, maxInFlightPerWorker: 64, maxQueue: 10_000, requestTimeoutMs: 600_000 });
  const servers: PeerServer[] = [];
  const closers: (() => void)[] = [];
  try {
    await pool.start();
    const { bare, binary, json } = await startComparisonServers(opts.python, dir, servers);
    const client = pool.client(BenchServiceDefinition);
    const workerPids = pool.health().workers.map((w) => w.pid as number);
    // One call per path and payload, made once: a round measures calls, not connection set-up.
    const calls = new Map<string, { call: Call; pids: number[] }>();
    const callFor = async (path: string, payload: number): Promise<{ call: Call; pids: number[] }> => {
      const key = `${path} ${payload}`;
      const known = calls.get(key);
      if (known) return known;
      const body = Buffer.alloc(payload, 7);
      let made: { call: Call; pids: number[] };
      if (path === "procgrpc (default transport)") made = { call: () => client.echo({ payload: body }), pids: workerPids };
      else {
        const peer = path === "pyproc-style JSON" ? { ...(await jsonPeerCall([json.socket], body)), pids: [json.pid] }
          : path === "socket floor (binary)" ? { ...(await binaryPeerCall([binary.socket], body)), pids: [binary.pid] }
          : { ...(await bareStreamCall([bare.socket], body)), pids: [bare.pid] };
        closers.push(peer.close);
        made = { call: peer.call, pids: peer.pids };
      }
      calls.set(key, made);
      return made;
    };
    const targets: TargetRatio[] = plans.map((p) => ({ name: p.name, figure: p.figure, numerator: p.numerator, denominator: p.denominator, limit: p.limit, atMost: p.atMost, numeratorValues: [], denominatorValues: [] }));
    for (let r = 0; r < rounds; r++) {
      for (const [i, plan] of plans.entries()) {
        const sides = r % 2 === 0 ? (["numerator", "denominator"] as const) : (["denominator", "numerator"] as const);
        for (const side of sides) {
          const path = side === "numerator" ? plan.numerator : plan.denominator;
          opts.log(`targets round ${r + 1}/${rounds}: ${path}, ${plan.payload} B, ${plan.figure}`);
          const { call, pids } = await callFor(path, plan.payload);
          const value = await plan.measure(call, pids);
          (side === "numerator" ? targets[i].numeratorValues : targets[i].denominatorValues).push(value);
        }
      }
    }
    return { rounds, targets };
  } finally {
    closers.forEach((close) => close());
    servers.forEach((s) => s.stop());
    await pool.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
}
