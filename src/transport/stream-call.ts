import type { ClientDuplexStream, ClientReadableStream, ClientWritableStream, Metadata, ServiceError, StatusObject } from "@grpc/grpc-js";
import { iteratorOf, type RequestSource } from "../call/request-iterator";
import { errorFromAbort } from "../core/cancellation";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { AnswerHooks } from "./answer";
import { describeExit, type CallTarget, type Lease, type TargetExit, type WorkerCall } from "./call-target";
import { refuseBeforeStart } from "./call-start";
import { rpcErrorFromStatus } from "./grpc-status";
import { laneProtocolError } from "./lane-pipe";
import { laneStreamPath, unframe } from "./lane-stream";
import { callFacts, type OutgoingCall } from "./outgoing-call";

export type { RequestSource } from "../call/request-iterator";

type WritableCall = ClientWritableStream<Buffer> | ClientDuplexStream<Buffer, unknown>;
type AnyStreamCall = ClientReadableStream<unknown> | WritableCall;

const passThrough = (bytes: Buffer): Buffer => bytes;

/**
 * The bookkeeping every streaming call shares: the lease (released when the call's status
 * arrives, whether or not anyone is still reading), the tracker that fails the call at once if
 * the target dies, the caller's signal, the caller's hooks, and the one RpcError for whatever
 * ended the call.
 */
class StreamLife {
  private endError: RpcError | undefined;
  private finalError: RpcError | undefined;
  private statusArrived = false;
  private released = false;
  private call: AnyStreamCall | undefined;
  private readonly hooks: AnswerHooks;
  private readonly tracker: WorkerCall;
  private readonly onAbort: () => void;
  private endWaiters: (() => void)[] = [];

  constructor(
    readonly out: OutgoingCall,
    private readonly lease: Lease,
  ) {
    this.hooks = new AnswerHooks(out);
    const target = lease.target;
    this.tracker = {
      failWorkerGone: (exit: TargetExit) => {
        this.endWith(new RpcError({ code: Status.UNAVAILABLE, details: `worker ${target.id} (pid ${target.pid}) exited during the stream (${describeExit(exit)})`, category: "connection", reachedWorker: true, ...callFacts(out, target) }));
      },
    };
    this.onAbort = () => this.endWith(errorFromAbort(out.signal as AbortSignal, { ...callFacts(out, target), reachedWorker: true }));
  }

  get target(): CallTarget {
    return this.lease.target;
  }

  /** The path to call: the method's lane alias when responses are lane frames. */
  get path(): string {
    return this.target.lane ? laneStreamPath(this.out.method.path) : this.out.method.path;
  }

  /** The response deserializer: lane frames are unwrapped first; a lane file that cannot be read ends the call as a `protocol` error. */
  get deserialize(): (bytes: Buffer) => unknown {
    const lane = this.target.lane;
    const deserialize = this.out.method.deserialize;
    if (!lane) return deserialize;
    return (frame: Buffer) => {
      let bytes: Buffer;
      try {
        bytes = unframe(lane, frame);
      } catch (err) {
        this.endWith(laneProtocolError(err, callFacts(this.out, this.target)));
        throw err;
      }
      return deserialize(bytes);
    };
  }

  /** True once the call is over (its status arrived, or this side ended it). */
  get ended(): boolean {
    return this.statusArrived || this.endError !== undefined;
  }

  /** Starts following a call grpc-js has opened. */
  attach(call: AnyStreamCall): void {
    this.call = call;
    call.on("metadata", (md: Metadata) => {
      const hookError = this.hooks.header(md);
      if (hookError) this.endWith(hookError);
    });
    call.on("status", (status: StatusObject) => this.onStatus(status));
    // grpc-js also emits the failure as 'error' (before 'status'); it is reported from the status,
    // and an 'error' nobody listens to yet (no one is reading) must not be thrown.
    call.on("error", () => undefined);
    this.target.calls.add(this.tracker);
    this.out.signal?.addEventListener("abort", this.onAbort, { once: true });
    if (this.out.signal?.aborted) this.onAbort();
  }

  /** Ends the call from this side with `error` (first reason wins); the worker sees a cancellation. */
  endWith(error: RpcError): void {
    if (this.ended) return;
    this.endError = error;
    this.call?.cancel();
  }

  /** The consumer stopped reading early: cancel quietly (no error is reported to anyone). */
  abandon(): void {
    if (this.ended) return;
    this.endWith(new RpcError({ code: Status.CANCELLED, details: "the caller stopped reading the stream", category: "cancelled", ...callFacts(this.out, this.target) }));
  }

  /** The RpcError for the end of the call, once it ended in failure. */
  toError(thrown?: unknown): RpcError {
    if (this.endError) return this.endError;
    if (this.finalError) return this.finalError;
    const e = thrown as Partial<ServiceError> | undefined;
    if (typeof e?.code === "number") {
      return rpcErrorFromStatus({ code: e.code, details: e.details ?? "", metadata: e.metadata }, {
        ...callFacts(this.out, this.target),
        deadlineAt: this.out.deadline.at,
        deadlineKind: this.out.deadline.kind,
        startedAt: this.out.startedAt,
        initialMetadata: this.hooks.initial,
        targetStopping: this.target.stopping === true,
      });
    }
    return RpcError.from(thrown, this.out.method.path);
  }

  /** Whether the call ended in failure (after its status arrived). */
  get failed(): boolean {
    return this.endError !== undefined || this.finalError !== undefined;
  }

  /** Resolves when the call is over or `emitter` emits `drain`; never rejects. */
  drainOrEnd(call: AnyStreamCall): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        call.off("drain", done);
        this.endWaiters = this.endWaiters.filter((w) => w !== done);
        resolve();
      };
      call.once("drain", done);
      this.endWaiters.push(done);
    });
  }

  private onStatus(status: StatusObject): void {
    if (this.statusArrived) return;
    const outcome = this.hooks.finish(this.target, status);
    this.statusArrived = true;
    if (!outcome.ok) this.finalError = outcome.error;
    this.release();
    for (const w of this.endWaiters.splice(0)) w();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.target.calls.delete(this.tracker);
    this.out.signal?.removeEventListener("abort", this.onAbort);
    this.lease.release();
  }
}

/**
 * The response side of a server or bidirectional call: an async iterator over the messages
 * that translates the end of the call into one RpcError, and cancels the call when the consumer
 * leaves early (`break`, `return`, a throw in the loop body).
 */
class ResponseIterator implements AsyncIterableIterator<unknown> {
  private readonly inner: AsyncIterator<unknown>;
  private finished = false;

  constructor(
    call: ClientReadableStream<unknown> | ClientDuplexStream<Buffer, unknown>,
    private readonly life: StreamLife,
  ) {
    this.inner = (call as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<unknown>> {
    if (this.finished) return { done: true, value: undefined };
    let result: IteratorResult<unknown>;
    try {
      result = await this.inner.next();
    } catch (err) {
      this.finished = true;
      throw this.life.toError(err);
    }
    if (result.done) {
      this.finished = true;
      if (this.life.failed) throw this.life.toError();
      return result;
    }
    return result;
  }

  async return(): Promise<IteratorResult<unknown>> {
    if (!this.finished) {
      this.finished = true;
      this.life.abandon();
    }
    await this.inner.return?.().catch(() => undefined);
    return { done: true, value: undefined };
  }
}

/**
 * Writes every request to the call as the worker reads them (HTTP/2 flow control), then
 * half-closes. Only the caller's own iterable throwing is "the request stream threw"; a
 * message that cannot be serialised is a protocol error; the end of the call stops the pump.
 */
async function pumpRequests(call: WritableCall, requests: RequestSource, life: StreamLife): Promise<void> {
  let iterator: AsyncIterator<unknown> | Iterator<unknown>;
  try {
    iterator = iteratorOf(requests);
  } catch (err) {
    life.endWith(requestStreamThrew(err, life));
    return;
  }
  let sent = 0;
  try {
    for (;;) {
      if (life.ended) return;
      let next: IteratorResult<unknown>;
      try {
        next = await iterator.next();
      } catch (err) {
        life.endWith(requestStreamThrew(err, life));
        return;
      }
      if (next.done || life.ended) break;
      let bytes: Buffer;
      try {
        bytes = life.out.method.serialize(next.value);
      } catch (err) {
        life.endWith(new RpcError({ code: Status.INTERNAL, details: `request message ${sent + 1} could not be serialized: ${err instanceof Error ? err.message : String(err)}`, category: "protocol", cause: err, ...callFacts(life.out, life.target) }));
        return;
      }
      sent += 1;
      if (!call.write(bytes)) await life.drainOrEnd(call);
    }
    if (!life.ended) call.end();
  } finally {
    // The call ended before the iterable did: let a generator run its cleanup.
    if (life.ended) {
      try {
        await iterator.return?.();
      } catch {
        // The caller's cleanup failing does not change how the call ended.
      }
    }
  }
}

function requestStreamThrew(err: unknown, life: StreamLife): RpcError {
  return new RpcError({ code: Status.CANCELLED, details: `the request stream threw: ${err instanceof Error ? err.message : String(err)}`, category: "cancelled", cause: err, ...callFacts(life.out, life.target) });
}

function start(out: OutgoingCall, lease: Lease): StreamLife {
  const refused = refuseBeforeStart(out, lease.target);
  if (refused) {
    lease.release();
    throw refused;
  }
  return new StreamLife(out, lease);
}

/**
 * Starts a server-streaming call on `lease`'s target with the request already serialised, and
 * returns its responses. The lease is released when the call's status arrives.
 */
export function serverStreamCall(out: OutgoingCall, payload: Buffer, lease: Lease): AsyncIterableIterator<unknown> {
  const life = start(out, lease);
  const channel = lease.target.channel as NonNullable<CallTarget["channel"]>;
  const call = channel.makeServerStreamRequest(life.path, passThrough, life.deserialize, payload, out.metadata, { deadline: out.deadline.at });
  life.attach(call);
  return new ResponseIterator(call, life);
}

/** Starts a bidirectional call: requests are written as the worker reads them; responses come as they arrive. */
export function bidiStreamCall(out: OutgoingCall, requests: RequestSource, lease: Lease): AsyncIterableIterator<unknown> {
  const life = start(out, lease);
  const channel = lease.target.channel as NonNullable<CallTarget["channel"]>;
  const call = channel.makeBidiStreamRequest(life.path, passThrough, life.deserialize, out.metadata, { deadline: out.deadline.at });
  life.attach(call);
  void pumpRequests(call, requests, life);
  return new ResponseIterator(call, life);
}

/** Starts a client-streaming call and resolves with its single response. */
export function clientStreamCall(out: OutgoingCall, requests: RequestSource, lease: Lease): Promise<unknown> {
  let life: StreamLife;
  try {
    life = start(out, lease);
  } catch (err) {
    return Promise.reject(err);
  }
  const channel = lease.target.channel as NonNullable<CallTarget["channel"]>;
  return new Promise<unknown>((resolve, reject) => {
    let response: { err: ServiceError | null; value: unknown } | undefined;
    const call = channel.makeClientStreamRequest(life.path, passThrough, life.deserialize, out.metadata, { deadline: out.deadline.at }, (err: ServiceError | null, value?: unknown) => {
      response = { err, value };
    });
    // The status event follows the callback in the same turn; settle after both.
    call.on("status", () =>
      queueMicrotask(() => {
        if (life.failed || !response || response.err) reject(life.toError(response?.err ?? undefined));
        else resolve(response.value);
      }),
    );
    life.attach(call);
    void pumpRequests(call, requests, life);
  });
}
