import { randomUUID } from "node:crypto";
import { once } from "node:events";
import type { Client, ClientDuplexStream, ClientReadableStream, ClientWritableStream, Metadata, ServiceError } from "@grpc/grpc-js";
import type { CallOptions } from "../call/call-options";
import type { EffectiveDeadline } from "../core/deadline";
import type { StreamMethod } from "../call/stream-method";
import type { RequestStream } from "../client/typed-client";
import { rpcErrorFromServiceError, userMetadata } from "./grpc-status";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { errorFromAbort, toMetadata } from "./unary-call";
import type { CallTarget } from "./call-target";
import { describeExit, type WorkerCall } from "../pool/worker-process";

type AnyStreamCall = ClientReadableStream<unknown> | ClientWritableStream<unknown> | ClientDuplexStream<unknown, unknown>;

/**
 * The bookkeeping every streaming call shares: the worker slot (released exactly once), the
 * tracker that fails the call at once if the worker dies, the caller's signal, and the
 * translation of whatever ended the call into one RpcError.
 */
class StreamLifecycle {
  readonly requestId: string;
  private endError: RpcError | undefined;
  private released = false;
  private initialMetadata: Metadata | undefined;
  private call: AnyStreamCall | undefined;
  private readonly tracker: WorkerCall;
  private readonly onAbort: () => void;

  constructor(
    readonly worker: CallTarget,
    readonly method: StreamMethod<unknown, unknown>,
    readonly deadline: EffectiveDeadline,
    readonly options: CallOptions,
    private readonly release: () => void,
  ) {
    this.requestId = options.requestId ?? randomUUID();
    const facts = this.facts();
    this.tracker = {
      failWorkerGone: (exit) => {
        this.endError ??= new RpcError({ code: Status.UNAVAILABLE, details: `worker ${worker.id} (pid ${worker.pid}) exited during the stream (${describeExit(exit)})`, category: "connection", reachedWorker: true, ...facts });
        this.call?.cancel();
      },
    };
    this.onAbort = () => {
      this.endError ??= errorFromAbort(options.signal as AbortSignal, method.path, facts);
      this.call?.cancel();
    };
  }

  get metadata(): Metadata {
    return toMetadata(this.options.metadata, this.requestId);
  }

  get callOptions(): { deadline: Date } {
    return { deadline: new Date(this.deadline.at) };
  }

  /** Starts tracking a call that grpc-js has opened. */
  attach(call: AnyStreamCall): void {
    this.call = call;
    call.on("metadata", (md: Metadata) => {
      this.initialMetadata = md;
      this.options.onHeader?.(userMetadata(md));
    });
    const onTrailer = this.options.onTrailer;
    if (onTrailer) call.on("status", (status: { metadata: Metadata }) => onTrailer(userMetadata(status.metadata)));
    this.worker.calls.add(this.tracker);
    this.options.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /** Cancels the call (the consumer stopped early); Python sees the cancellation. */
  cancel(): void {
    this.call?.cancel();
  }

  /** The RpcError for whatever ended the call: worker death and the caller's signal take precedence. */
  toError(err: unknown): RpcError {
    if (this.endError) return this.endError;
    const e = err as Partial<ServiceError>;
    if (typeof e?.code === "number") {
      return rpcErrorFromServiceError(e, { ...this.facts(), deadlineAt: this.deadline.at, deadlineKind: this.deadline.kind, initialMetadata: this.initialMetadata });
    }
    return RpcError.from(err, this.method.path);
  }

  /** Records a failure of the caller's request stream and cancels the call. */
  failRequests(err: unknown): void {
    this.endError ??= new RpcError({
      code: Status.CANCELLED,
      details: `the request stream threw: ${err instanceof Error ? err.message : String(err)}`,
      category: "cancelled",
      cause: err,
      ...this.facts(),
    });
    this.call?.cancel();
  }

  /** Ends the bookkeeping; safe to call more than once. */
  finish(): void {
    if (this.released) return;
    this.released = true;
    this.worker.calls.delete(this.tracker);
    this.options.signal?.removeEventListener("abort", this.onAbort);
    this.release();
  }

  get ended(): boolean {
    return this.endError !== undefined;
  }

  private facts(): { method: string; workerId: string; requestId: string; idempotent: boolean } {
    return { method: this.method.path, workerId: this.worker.id, requestId: this.requestId, idempotent: this.method.idempotent || this.options.idempotent === true };
  }
}

/** Admission the pool gives a stream: a worker slot and the effective deadline. */
export type Admit = () => Promise<{ worker: CallTarget; deadline: EffectiveDeadline; release: () => void }>;

async function* readResponses<Res>(call: ClientReadableStream<Res> | ClientDuplexStream<unknown, Res>, life: StreamLifecycle): AsyncGenerator<Res> {
  let completed = false;
  try {
    for await (const message of call as AsyncIterable<Res>) {
      if (life.ended) break;
      yield message;
    }
    if (life.ended) throw life.toError(undefined);
    completed = true;
  } catch (err) {
    completed = true;
    throw life.toError(err);
  } finally {
    // Leaving early (break, return, a throw in the loop body) cancels the call in the worker.
    if (!completed) life.cancel();
    life.finish();
  }
}

/** Writes every request to the call, respecting HTTP/2 flow control, then half-closes. */
async function writeRequests(call: ClientWritableStream<unknown> | ClientDuplexStream<unknown, unknown>, requests: RequestStream<unknown>, life: StreamLifecycle, closed: Promise<unknown>): Promise<void> {
  try {
    for await (const request of requests as AsyncIterable<unknown>) {
      if (life.ended || call.destroyed) return;
      if (!call.write(request)) {
        // Wait for the worker to read (flow control), or for the call to end.
        await Promise.race([once(call, "drain"), closed]);
      }
    }
    if (!life.ended) call.end();
  } catch (err) {
    life.failRequests(err);
  }
}

/** Admits the call and sets up its bookkeeping on the chosen worker's channel. */
async function begin(admit: Admit, method: StreamMethod<unknown, unknown>, options: CallOptions): Promise<{ life: StreamLifecycle; channel: Client }> {
  const { worker, deadline, release } = await admit();
  const life = new StreamLifecycle(worker, method, deadline, options, release);
  const channel = worker.channel;
  if (!channel) {
    life.finish();
    throw new RpcError({ code: Status.UNAVAILABLE, details: `worker ${worker.id} has no open channel`, category: "connection", reachedWorker: false, method: method.path, workerId: worker.id });
  }
  return { life, channel };
}

/** Runs a server-streaming call: admission happens on the first `next()`. */
export async function* serverStreamCall<Res>(admit: Admit, method: StreamMethod<unknown, Res>, request: unknown, options: CallOptions): AsyncGenerator<Res> {
  const { life, channel } = await begin(admit, method, options);
  const call = channel.makeServerStreamRequest(method.path, method.serialize, method.deserialize, request, life.metadata, life.callOptions);
  life.attach(call);
  yield* readResponses(call, life);
}

/** Runs a bidirectional call: requests are written as the worker reads them; responses are yielded as they come. */
export async function* bidiStreamCall<Res>(admit: Admit, method: StreamMethod<unknown, Res>, requests: RequestStream<unknown>, options: CallOptions): AsyncGenerator<Res> {
  const { life, channel } = await begin(admit, method, options);
  const call = channel.makeBidiStreamRequest(method.path, method.serialize, method.deserialize, life.metadata, life.callOptions);
  life.attach(call);
  const closed = once(call, "status").catch(() => undefined);
  void writeRequests(call, requests, life, closed);
  yield* readResponses(call, life);
}

/** Runs a client-streaming call and resolves with the single response. */
export async function clientStreamCall<Res>(admit: Admit, method: StreamMethod<unknown, Res>, requests: RequestStream<unknown>, options: CallOptions): Promise<Res> {
  const { life, channel } = await begin(admit, method, options);
  let settle!: (err: ServiceError | null, value?: Res) => void;
  const result = new Promise<Res>((resolve, reject) => {
    settle = (err, value) => {
      life.finish();
      if (err || life.ended) reject(life.toError(err));
      else resolve(value as Res);
    };
  });
  const call = channel.makeClientStreamRequest(method.path, method.serialize, method.deserialize, life.metadata, life.callOptions, (err: ServiceError | null, value?: Res) => settle(err, value));
  life.attach(call);
  void writeRequests(call, requests, life, result.catch(() => undefined));
  return result;
}
