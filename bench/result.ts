// The shape of bench/run.ts's results (bench/results/latest.json), shared by the runner and the report.
import type { LargeRow } from "./large";
import type { RunFigures } from "./lib/measure";

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
  startup: { importGrpcMs: number; coldStartMs: number; restartMs: number; rssMiB: number };
};
