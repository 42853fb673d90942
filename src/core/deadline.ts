import type { TimeoutKind } from "./categories";
import type { CallOptions } from "../call/call-options";

/** The earliest of a call's limits, and which one it is. */
export interface EffectiveDeadline {
  at: number;
  kind: TimeoutKind;
}

/** Picks the earliest of `deadline` (context), `timeoutMs` (per-call) and the pool default (transport). */
export function effectiveDeadline(options: CallOptions | undefined, requestTimeoutMs: number, now = Date.now()): EffectiveDeadline {
  let at = now + requestTimeoutMs;
  let kind: TimeoutKind = "transport";
  if (options?.timeoutMs !== undefined && now + options.timeoutMs <= at) {
    at = now + options.timeoutMs;
    kind = "per-call";
  }
  if (options?.deadline !== undefined) {
    const d = typeof options.deadline === "number" ? options.deadline : options.deadline.getTime();
    if (d <= at) {
      at = d;
      kind = "context";
    }
  }
  return { at, kind };
}
