import { randomUUID } from "node:crypto";
import { Metadata, type Client, type ClientDuplexStream } from "@grpc/grpc-js";
import type { CallOptions, MetadataInit } from "../call/call-options";
import type { EffectiveDeadline } from "../core/deadline";
import type { UnaryMethod } from "../call/unary-method";
import { rpcErrorFromServiceError, userMetadata } from "./grpc-status";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { PipeRequest, PipeResponse, type MetadataEntry, type PipeCall, type PipeResult } from "../gen/procgrpc/internal/v1/pipeline";
import { REQUEST_ID_KEY, errorFromAbort } from "./unary-call";
import { describeExit, type WorkerCall, type WorkerProcess } from "../pool/worker-process";
import type { WorkerExit } from "../pool/worker-state";

const PIPE_PATH = "/procgrpc.internal.v1.PipelineService/Pipe";

const serializeRequest = (req: PipeRequest): Buffer => {
  const bytes = PipeRequest.encode(req).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
};

/** One call waiting for its answer on the pipeline. */
interface PendingCall {
  readonly method: UnaryMethod<unknown, unknown>;
  readonly deadline: EffectiveDeadline;
  readonly options: CallOptions;
  readonly requestId: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: RpcError) => void;
  readonly release: () => void;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
}

function metadataEntries(init: MetadataInit | undefined, requestId: string): MetadataEntry[] {
  const entries: MetadataEntry[] = [];
  let hasRequestId = false;
  const add = (key: string, value: string | Buffer): void => {
    const k = key.toLowerCase();
    if (k === REQUEST_ID_KEY) hasRequestId = true;
    entries.push({ key: k, value: typeof value === "string" ? Buffer.from(value) : value });
  };
  if (init instanceof Metadata) {
    for (const [key, values] of Object.entries(init.toJSON())) for (const v of values) add(key, v);
  } else if (init) {
    for (const [key, value] of Object.entries(init)) {
      for (const v of (Array.isArray(value) ? value : [value]) as (string | Buffer)[]) add(key, v);
    }
  }
  if (!hasRequestId) entries.push({ key: REQUEST_ID_KEY, value: Buffer.from(requestId) });
  return entries;
}

function toMetadata(entries: readonly MetadataEntry[]): Metadata {
  const md = new Metadata();
  for (const { key, value } of entries) md.add(key, key.endsWith("-bin") ? value : value.toString("utf8"));
  return md;
}

/**
 * The pipelined transport to one worker: unary calls travel as messages on a single long-lived
 * bidirectional stream (`procgrpc.internal.v1.PipelineService/Pipe`), each tagged with a call id.
 * The worker runs them through the same servicer wrappers as normal calls, so the status,
 * details, metadata, deadline and cancellation semantics are those of a normal unary call.
 */
export class Pipeline implements WorkerCall {
  private readonly pending = new Map<number, PendingCall>();
  private readonly stream: ClientDuplexStream<PipeRequest, PipeResponse>;
  private nextCallId = 1;
  // Calls and cancellations issued in this turn of the event loop, sent as one stream message.
  private outCalls: PipeCall[] = [];
  private outCancels: number[] = [];
  private flushScheduled = false;
  /** No new calls (half-closed or broken). */
  private closed = false;
  /** The stream ended; nothing more will be answered. */
  private broken = false;

  constructor(
    private readonly worker: WorkerProcess,
    channel: Client,
    private readonly onClosed: (pipeline: Pipeline) => void,
  ) {
    this.stream = channel.makeBidiStreamRequest(PIPE_PATH, serializeRequest, (b: Buffer) => PipeResponse.decode(b), new Metadata(), {});
    this.stream.on("data", (res: PipeResponse) => {
      for (const result of res.results) this.answer(result);
    });
    this.stream.on("error", (err: Error) => this.breakWith(`pipeline stream to worker ${worker.id} failed: ${err.message}`));
    this.stream.on("end", () => this.breakWith(`pipeline stream to worker ${worker.id} ended`));
    worker.calls.add(this);
  }

  /** Calls waiting for an answer (zero when idle: no call state leaks). */
  get size(): number {
    return this.pending.size;
  }

  /** Sends one unary call; `release` is called exactly once when it settles. */
  call<Res>(method: UnaryMethod<unknown, Res>, payload: Buffer, deadline: EffectiveDeadline, options: CallOptions, release: () => void): Promise<Res> {
    const requestId = options.requestId ?? randomUUID();
    if (this.closed) {
      release();
      return Promise.reject(new RpcError({ code: Status.UNAVAILABLE, details: `pipeline to worker ${this.worker.id} is closed`, category: "connection", reachedWorker: false, workerId: this.worker.id, requestId, method: method.path }));
    }
    const callId = this.nextCallId++;
    return new Promise<Res>((resolve, reject) => {
      const entry: PendingCall = {
        method: method as UnaryMethod<unknown, unknown>,
        deadline,
        options,
        requestId,
        resolve: resolve as (value: unknown) => void,
        reject,
        release,
        timer: undefined,
        onAbort: undefined,
      };
      const signal = options.signal;
      if (signal) {
        entry.onAbort = () => this.cancel(callId, errorFromAbort(signal, method.path, this.facts(entry)));
        signal.addEventListener("abort", entry.onAbort, { once: true });
      }
      const remainingMs = deadline.at - Date.now();
      entry.timer = setTimeout(() => this.cancel(callId, this.deadlineError(entry)), Math.max(0, remainingMs));
      this.pending.set(callId, entry);
      this.outCalls.push({ callId, method: method.path, payload, timeoutUs: Math.max(1, Math.round(remainingMs * 1000)), metadata: metadataEntries(options.metadata, requestId) });
      this.scheduleFlush();
    });
  }

  /** The worker died: every call on the pipeline fails at once with UNAVAILABLE. */
  failWorkerGone(exit: WorkerExit): void {
    this.breakWith(`worker ${this.worker.id} (pid ${this.worker.pid}) exited during the call (${describeExit(exit)})`);
  }

  /**
   * Half-closes the stream: no new calls; calls already sent still get their answers (the
   * worker answers them, then ends the stream), just as in-flight unary calls drain.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
    // Calls queued in this turn still go out before the half-close.
    setImmediate(() => {
      if (!this.broken && !this.stream.writableEnded) {
        if (this.outCalls.length > 0 || this.outCancels.length > 0) this.stream.write({ calls: this.outCalls, cancel: this.outCancels });
        this.outCalls = [];
        this.outCancels = [];
        this.stream.end();
      }
    });
  }

  /** Sends everything queued in this turn of the event loop as one message (setImmediate runs after the turn's I/O callbacks). */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.broken || this.stream.writableEnded) return;
      const calls = this.outCalls;
      const cancel = this.outCancels;
      this.outCalls = [];
      this.outCancels = [];
      if (calls.length > 0 || cancel.length > 0) this.stream.write({ calls, cancel });
    });
  }

  private answer(res: PipeResult): void {
    const entry = this.settle(res.callId);
    if (!entry) return; // A late answer to a call that was cancelled or timed out here.
    const initial = res.initialMetadata.length > 0 ? toMetadata(res.initialMetadata) : undefined;
    if (initial) entry.options.onHeader?.(userMetadata(initial));
    const trailers = toMetadata(res.trailingMetadata);
    entry.options.onTrailer?.(userMetadata(trailers));
    if (res.code === Status.OK) {
      let value: unknown;
      try {
        value = entry.method.deserialize(res.payload);
      } catch (err) {
        entry.reject(new RpcError({ code: Status.INTERNAL, details: `Response message parsing error: ${(err as Error).message}`, category: "protocol", cause: err, ...this.facts(entry) }));
        return;
      }
      entry.resolve(value);
      return;
    }
    entry.reject(
      rpcErrorFromServiceError(
        { code: res.code, details: res.details, metadata: trailers },
        { ...this.facts(entry), deadlineAt: entry.deadline.at, deadlineKind: entry.deadline.kind, initialMetadata: initial },
      ),
    );
  }

  /** Settles a call locally (deadline or signal) and tells the worker to cancel it. */
  private cancel(callId: number, err: RpcError): void {
    const entry = this.settle(callId);
    if (!entry) return;
    if (!this.broken && !this.stream.writableEnded) {
      this.outCancels.push(callId);
      this.scheduleFlush();
    }
    entry.reject(err);
  }

  /** Removes a call's state (timer, listener, slot); returns it unless it was already settled. */
  private settle(callId: number): PendingCall | undefined {
    const entry = this.pending.get(callId);
    if (!entry) return undefined;
    this.pending.delete(callId);
    clearTimeout(entry.timer);
    if (entry.onAbort) entry.options.signal?.removeEventListener("abort", entry.onAbort);
    entry.release();
    return entry;
  }

  /** The stream is gone: every waiting call fails with UNAVAILABLE (it may have run). */
  private breakWith(details: string): void {
    if (this.broken) return;
    this.broken = true;
    this.closed = true;
    this.worker.calls.delete(this);
    for (const callId of [...this.pending.keys()]) {
      const entry = this.settle(callId);
      entry?.reject(new RpcError({ code: Status.UNAVAILABLE, details, category: "connection", reachedWorker: true, ...this.facts(entry) }));
    }
    this.onClosed(this);
  }

  private facts(entry: PendingCall): { method: string; workerId: string; requestId: string; idempotent: boolean } {
    return { method: entry.method.path, workerId: this.worker.id, requestId: entry.requestId, idempotent: entry.method.idempotent || entry.options.idempotent === true };
  }

  private deadlineError(entry: PendingCall): RpcError {
    return new RpcError({ code: Status.DEADLINE_EXCEEDED, details: "Deadline exceeded", category: "timeout", timeoutKind: entry.deadline.kind, ...this.facts(entry) });
  }
}
