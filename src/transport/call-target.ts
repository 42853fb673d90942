import type { Client } from "@grpc/grpc-js";
import type { PipeLane } from "./lane-pipe";

/** How a target process ended (a local worker's exit code or signal). */
export interface TargetExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Something in flight on a target that must be failed at once if the target goes away. */
export interface WorkerCall {
  failWorkerGone(exit: TargetExit): void;
}

/**
 * Where a call goes: a local `WorkerProcess` is one, and so is a `RemotePool` target (one
 * grpc-js channel to a remote address). The transports depend on this shape only.
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
  /** True once the target is being stopped or is gone: a call it drops then lost its connection, whatever the transport reports. */
  readonly stopping?: boolean;
  /** The shared-memory lane its stream calls use (a local worker of a pool with the lane). */
  readonly lane?: PipeLane | undefined;
}

/**
 * A call's claim on capacity of one target, from admission to the call's end. `release()` is
 * idempotent: the transport releases when the call ends (whatever ends it), and the caller
 * releases again in a `finally` for calls that never got that far.
 */
export interface Lease {
  readonly target: CallTarget;
  release(): void;
}

/** "exit code 1" / "signal SIGKILL", for messages. */
export function describeExit(exit: TargetExit): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}
