import type { Client } from "@grpc/grpc-js";
import type { WorkerCall } from "../pool/worker-process";

/**
 * What running one call needs from where it goes: a local `WorkerProcess` is one, and so is a
 * `RemotePool` target (one grpc-js channel to a remote worker address). `runUnaryCall` and the
 * stream calls depend on this shape only, so both pools share the call machinery.
 */
export interface CallTarget {
  /** Shown in `RpcError.workerId` and logs: a local worker's id, or a remote target string. */
  readonly id: string;
  /** The open channel, or undefined when calls cannot be sent (fails the call with UNAVAILABLE). */
  readonly channel: Client | undefined;
  /** Calls in flight, failed at once when the target goes away (`failWorkerGone`). */
  readonly calls: Set<WorkerCall>;
  /** The OS process id of a local worker; undefined for a remote one. */
  readonly pid?: number | undefined;
}
