import type { RpcError } from "../core/rpc-error";
import { AnswerHooks } from "./answer";
import type { Lease } from "./call-target";
import type { OutgoingCall } from "./outgoing-call";

/** One call waiting for its answer on the pipeline: its promise and what settling it needs. */
export class PendingCall {
  readonly promise: Promise<unknown>;
  readonly hooks: AnswerHooks;
  resolve!: (value: unknown) => void;
  reject!: (err: RpcError) => void;
  /** The listener on the caller's signal, when it gave one. */
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly out: OutgoingCall,
    readonly lease: Lease,
  ) {
    this.hooks = new AnswerHooks(out);
    this.promise = new Promise<unknown>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}
