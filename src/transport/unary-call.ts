import { randomUUID } from "node:crypto";
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import type { CallOptions, MetadataInit } from "../call/call-options";
import type { EffectiveDeadline } from "../core/deadline";
import type { UnaryMethod } from "../call/unary-method";
import { rpcErrorFromServiceError, userMetadata } from "./grpc-status";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { CallTarget } from "./call-target";
import { describeExit, type WorkerCall } from "../pool/worker-process";
import type { WorkerExit } from "../pool/worker-state";

/** The metadata key carrying the request id into Python's logs. */
export const REQUEST_ID_KEY = "x-request-id";

/** Builds the call metadata from the caller's, adding an `x-request-id` unless one is there. */
export function toMetadata(init: MetadataInit | undefined, requestId: string): Metadata {
  const md = init instanceof Metadata ? init.clone() : new Metadata();
  if (init && !(init instanceof Metadata)) {
    for (const [key, value] of Object.entries(init)) {
      const values = Array.isArray(value) ? value : [value];
      for (const v of values as (string | Buffer)[]) md.add(key, v);
    }
  }
  if (md.get(REQUEST_ID_KEY).length === 0) md.set(REQUEST_ID_KEY, requestId);
  return md;
}

/** Why the caller's signal fired, as an RpcError: a TimeoutError is a deadline, anything else a cancellation. */
export function errorFromAbort(signal: AbortSignal, method: string, extra: { workerId?: string; requestId?: string; idempotent: boolean; reachedWorker?: boolean }): RpcError {
  // Duck-typed, not instanceof: AbortSignal.timeout's DOMException may come from another realm
  // (a vm context such as Jest's), where it is not an instance of this realm's Error.
  const reason = signal.reason as { name?: unknown; message?: unknown } | undefined;
  const isTimeout = typeof reason === "object" && reason !== null && reason.name === "TimeoutError";
  const why = typeof reason === "object" && reason !== null && typeof reason.message === "string" && reason.message ? `: ${reason.message}` : "";
  return new RpcError({
    code: isTimeout ? Status.DEADLINE_EXCEEDED : Status.CANCELLED,
    details: isTimeout ? "deadline exceeded: the caller's signal timed out" : `call cancelled by the caller${why}`,
    category: isTimeout ? "timeout" : "cancelled",
    timeoutKind: isTimeout ? "context" : undefined,
    method,
    cause: reason,
    ...extra,
  });
}

/**
 * Runs one unary call on a worker whose slot the caller already holds; `release` is called
 * exactly once when the call settles. A worker that dies fails the call at once (UNAVAILABLE).
 */
export function runUnaryCall<Res>(
  worker: CallTarget,
  method: UnaryMethod<unknown, Res>,
  request: unknown,
  deadline: EffectiveDeadline,
  options: CallOptions | undefined,
  release: () => void,
): Promise<Res> {
  const requestId = options?.requestId ?? randomUUID();
  const facts = { method: method.path, workerId: worker.id, requestId, idempotent: method.idempotent || options?.idempotent === true };
  return new Promise<Res>((resolve, reject) => {
    const channel = worker.channel;
    if (!channel) {
      release();
      reject(new RpcError({ code: Status.UNAVAILABLE, details: `worker ${worker.id} has no open channel`, category: "connection", reachedWorker: false, ...facts }));
      return;
    }
    let settled = false;
    let initialMetadata: Metadata | undefined;
    const signal = options?.signal;
    const settle = (err: RpcError | null, value?: Res): void => {
      if (settled) return;
      settled = true;
      worker.calls.delete(tracker);
      signal?.removeEventListener("abort", onAbort);
      release();
      if (err) reject(err);
      else resolve(value as Res);
    };
    const tracker: WorkerCall = {
      failWorkerGone(exit: WorkerExit) {
        call.cancel();
        settle(new RpcError({ code: Status.UNAVAILABLE, details: `worker ${worker.id} (pid ${worker.pid}) exited during the call (${describeExit(exit)})`, category: "connection", reachedWorker: true, ...facts }));
      },
    };
    const onAbort = (): void => {
      call.cancel();
      settle(errorFromAbort(signal as AbortSignal, method.path, facts));
    };
    const call = channel.makeUnaryRequest(
      method.path,
      method.serialize,
      method.deserialize,
      request,
      toMetadata(options?.metadata, requestId),
      { deadline: new Date(deadline.at) },
      (err: ServiceError | null, value?: Res) => {
        if (err) settle(rpcErrorFromServiceError(err, { ...facts, deadlineAt: deadline.at, deadlineKind: deadline.kind, initialMetadata }));
        else settle(null, value);
      },
    );
    call.on("metadata", (md: Metadata) => {
      initialMetadata = md;
      options?.onHeader?.(userMetadata(md));
    });
    if (options?.onTrailer) {
      const onTrailer = options.onTrailer;
      call.on("status", (status: { metadata: Metadata }) => onTrailer(userMetadata(status.metadata)));
    }
    worker.calls.add(tracker);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
