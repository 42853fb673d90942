// The call-path features whose cost bench/run.ts measures against the bare procgrpc call.
import type { CallOptions, ClientOptions, WorkerPoolOptions } from "../src";

/** One configuration of the pool and client; `call` gives per-call options. */
export interface FeatureVariant {
  name: string;
  pool?: Partial<WorkerPoolOptions>;
  client?: ClientOptions;
  call?: () => CallOptions;
}

/** The bare call first; every other variant is reported as a cost relative to it. */
export function featureVariants(): FeatureVariant[] {
  return [
    { name: "bare procgrpc call" },
    { name: "+ per-call deadline (timeoutMs)", call: () => ({ timeoutMs: 5000 }) },
  ];
}
