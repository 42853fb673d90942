import type { Metadata, ServiceError, StatusObject } from "@grpc/grpc-js";
import { errorFromAbort } from "../core/cancellation";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { AnswerHooks } from "./answer";
import { describeExit, type CallTarget, type Lease, type TargetExit, type WorkerCall } from "./call-target";
import { refuseBeforeStart } from "./call-start";
import { callFacts, type OutgoingCall } from "./outgoing-call";

const passThrough = (bytes: Buffer): Buffer => bytes;

/**
 * Runs one unary call as its own HTTP/2 stream (plain gRPC) on `lease`'s target, with the request
 * already serialised. The lease is released when the call settles, whatever settles it; a
 * target that dies fails the call at once (UNAVAILABLE).
 */
export function runUnaryCall(out: OutgoingCall, payload: Buffer, lease: Lease): Promise<unknown> {
  const target = lease.target;
  const refused = refuseBeforeStart(out, target);
  if (refused) {
    lease.release();
    return Promise.reject(refused);
  }
  const channel = target.channel as NonNullable<CallTarget["channel"]>;
  return new Promise<unknown>((resolve, reject) => {
    const hooks = new AnswerHooks(out);
    const signal = out.signal;
    let settled = false;
    let received: { err: ServiceError | null; value: unknown } | undefined;
    let status: StatusObject | undefined;
    const settle = (error: RpcError | undefined, value?: unknown): void => {
      if (settled) return;
      settled = true;
      target.calls.delete(tracker);
      signal?.removeEventListener("abort", onAbort);
      lease.release();
      if (error) reject(error);
      else resolve(value);
    };
    const fail = (error: RpcError): void => {
      call.cancel();
      settle(error);
    };
    const tracker: WorkerCall = {
      failWorkerGone(exit: TargetExit) {
        fail(new RpcError({ code: Status.UNAVAILABLE, details: `worker ${target.id} (pid ${target.pid}) exited during the call (${describeExit(exit)})`, category: "connection", reachedWorker: true, ...callFacts(out, target) }));
      },
    };
    const onAbort = (): void => fail(errorFromAbort(signal as AbortSignal, { ...callFacts(out, target), reachedWorker: true }));
    // Settles once grpc-js has reported both the callback and the 'status' event (in that order,
    // in one turn): the trailers of a successful call come only with the event.
    const finish = (): void => {
      if (settled || !received) return;
      const raw: StatusObject = status ?? { code: received.err?.code ?? Status.OK, details: received.err?.details ?? "", metadata: received.err?.metadata as Metadata };
      const outcome = hooks.finish(target, raw, received.value);
      if (outcome.ok) settle(undefined, outcome.value);
      else settle(outcome.error);
    };
    const call = channel.makeUnaryRequest(out.method.path, passThrough, out.method.deserialize, payload, out.metadata, { deadline: out.deadline.at }, (err: ServiceError | null, value?: unknown) => {
      received = { err, value };
      queueMicrotask(finish);
    });
    call.on("metadata", (md: Metadata) => {
      const hookError = hooks.header(md);
      if (hookError) fail(hookError);
    });
    call.on("status", (s: StatusObject) => {
      status = s;
    });
    target.calls.add(tracker);
    signal?.addEventListener("abort", onAbort, { once: true });
    // The signal may have fired between admission and here (same tick as the call, or while queued).
    if (signal?.aborted) onAbort();
  });
}
