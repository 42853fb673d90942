// The shape of bench/run.ts's results (bench/results/latest.json), shared by the runner and the report.
import type { LargeRow } from "./large";
import type { RunFigures } from "./lib/measure";
import type { TargetRatio } from "./target-rounds";

/** One measured path at one payload, concurrency and pool size. */
export interface Row extends RunFigures {
  path: string;
  payload: number;
  concurrency: number;
  workers: number;
}

export type BenchResult = {
  date: string;
  machine: { cpus: string; memoryGiB: number; kernel: string; load: string };
  versions: Record<string, string>;
  quick: boolean;
  latency: Row[];
  load: Row[];
  /** Sequential round trips 64 KiB … 64 MiB with RSS (bench/large.ts); absent in results saved before it existed. */
  large?: LargeRow[];
  features: Row[];
  /** Issue 15's ratio targets in interleaved rounds (bench/target-rounds.ts); absent in results saved before it existed. */
  targetRounds?: { rounds: number; targets: TargetRatio[] };
  startup: { importGrpcMs: number; coldStartMs: number; restartMs: number; rssMiB: number };
};
