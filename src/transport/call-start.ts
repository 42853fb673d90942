import { errorFromAbort } from "../core/cancellation";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { CallTarget } from "./call-target";
import { deadlineDetails } from "./grpc-status";
import { callFacts, type OutgoingCall } from "./outgoing-call";

/**
 * Why an admitted call must not start on `target` after all: the target has no channel, the
 * caller's signal fired (between admission and now), or the deadline passed while the call
 * waited. Such a call never reaches the worker (`reachedWorker: false`), on every transport.
 */
export function refuseBeforeStart(out: OutgoingCall, target: CallTarget): RpcError | undefined {
  if (out.signal?.aborted) return errorFromAbort(out.signal, { ...callFacts(out, target), reachedWorker: false });
  if (Date.now() >= out.deadline.at) return expiredBeforeStart(out, target);
  if (!target.channel) {
    return new RpcError({ code: Status.UNAVAILABLE, details: `worker ${target.id} has no open channel`, category: "connection", reachedWorker: false, ...callFacts(out, target) });
  }
  return undefined;
}

/** A deadline that passed before the call could start: it never reaches a worker. */
export function expiredBeforeStart(out: OutgoingCall, target: CallTarget | undefined): RpcError {
  return deadlineError(out, target, false);
}

/** The error of a call whose deadline passed on this side (the one wording of every transport). */
export function deadlineError(out: OutgoingCall, target: CallTarget | undefined, reachedWorker: boolean): RpcError {
  return new RpcError({
    code: Status.DEADLINE_EXCEEDED,
    details: deadlineDetails({ deadlineAt: out.deadline.at, startedAt: out.startedAt }),
    category: "timeout",
    timeoutKind: out.deadline.kind,
    reachedWorker,
    ...callFacts(out, target),
  });
}
