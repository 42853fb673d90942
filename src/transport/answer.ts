import { Metadata } from "../core/grpc-metadata";
import { userMetadata } from "../core/metadata";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { CallTarget } from "./call-target";
import { rpcErrorFromStatus, type ReceivedStatus } from "./grpc-status";
import { callFacts, type OutgoingCall } from "./outgoing-call";

/**
 * What the caller sees of a worker's answer, the same on every transport: `onHeader` once, when
 * the headers arrive or, if the worker sent none, with empty metadata just before the answer;
 * then `onTrailer` once; both only when the worker answered (success, or a status the worker
 * sent), never for a call that failed on this side (deadline, cancellation, lost connection).
 */
export class AnswerHooks {
  private headerSent = false;
  /** The headers received, raw (for `RpcError.initialMetadata()`). */
  initial: Metadata | undefined;

  constructor(private readonly out: OutgoingCall) {}

  /** Headers arrived; returns the error to fail the call with when the caller's `onHeader` threw. */
  header(raw: Metadata): RpcError | undefined {
    if (this.headerSent) return undefined;
    this.headerSent = true;
    this.initial = raw;
    return this.invoke("onHeader", raw);
  }

  /**
   * The call's status arrived with `value` (on OK): returns the response, or the RpcError to
   * reject with, after running the caller's hooks.
   */
  finish(target: CallTarget, status: ReceivedStatus, value?: unknown): { ok: true; value: unknown } | { ok: false; error: RpcError } {
    const out = this.out;
    let error: RpcError | undefined;
    if (status.code !== Status.OK) {
      error = rpcErrorFromStatus(status, {
        ...callFacts(out, target),
        deadlineAt: out.deadline.at,
        deadlineKind: out.deadline.kind,
        startedAt: out.startedAt,
        initialMetadata: this.initial,
        targetStopping: target.stopping === true,
      });
    }
    if (!error || error.category === "worker") {
      const hookError = this.header(new Metadata()) ?? this.invoke("onTrailer", status.metadata);
      if (hookError) return { ok: false, error: hookError };
    }
    return error ? { ok: false, error } : { ok: true, value };
  }

  /** Runs the caller's hook, if any, with `raw` as the caller sees it (copied only then). */
  private invoke(name: "onHeader" | "onTrailer", raw: Metadata | undefined): RpcError | undefined {
    const hook = this.out[name];
    if (!hook) return undefined;
    try {
      hook(userMetadata(raw));
      return undefined;
    } catch (err) {
      return new RpcError({
        code: Status.UNKNOWN,
        details: `the caller's ${name} threw: ${err instanceof Error ? err.message : String(err)}`,
        category: "protocol",
        cause: err,
        ...callFacts(this.out, undefined),
      });
    }
  }
}
