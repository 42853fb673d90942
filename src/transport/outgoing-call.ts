import type { Metadata } from "@grpc/grpc-js";
import type { EffectiveDeadline } from "../core/deadline";
import type { AnyMethod, CallKind } from "../call/method";
import type { CallTarget } from "./call-target";

/**
 * One attempt of a call, ready for a transport: validated metadata (request id and call id
 * included), the deadline, the caller's signal and hooks. Built before admission, so a call that
 * cannot be sent fails without taking a worker's capacity.
 */
export interface OutgoingCall {
  readonly kind: CallKind;
  readonly method: AnyMethod;
  readonly metadata: Metadata;
  readonly deadline: EffectiveDeadline;
  /** When the attempt started (epoch ms), for the deadline's wording. */
  readonly startedAt: number;
  readonly signal: AbortSignal | undefined;
  /** The logical call's id (`x-request-id`). */
  readonly requestId: string;
  /** This attempt's id (`procgrpc-call-id`). */
  readonly callId: string;
  readonly idempotent: boolean;
  readonly onHeader: ((metadata: Metadata) => void) | undefined;
  readonly onTrailer: ((metadata: Metadata) => void) | undefined;
}

/** The facts every RpcError about an attempt on `target` carries. */
export function callFacts(out: OutgoingCall, target: CallTarget | undefined): { method: string; workerId: string | undefined; requestId: string; idempotent: boolean } {
  return { method: out.method.path, workerId: target?.id, requestId: out.requestId, idempotent: out.idempotent };
}
