import { Metadata } from "../core/grpc-metadata";
import { errorFromAbort } from "../core/cancellation";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { MetadataEntry, PipeCall, PipeHeader, PipeResult } from "../gen/procgrpc/internal/v1/pipeline";
import { describeExit, type CallTarget, type Lease, type TargetExit, type WorkerCall } from "./call-target";
import { deadlineError, refuseBeforeStart } from "./call-start";
import { DeadlineQueue } from "./deadline-queue";
import { neverSent } from "./grpc-status";
import { LaneRequestFiles, laneProtocolError, workerLaneFault, type PipeLane } from "./lane-pipe";
import { LaneRequest, discardRequest, type UnaryRequest } from "./unary-request";
import { callFacts, type OutgoingCall } from "./outgoing-call";
import { PendingCall } from "./pending-call";
import { pipeCallMetadata } from "./pipe-metadata";
import type { PipeStream } from "./pipe-stream";

/** Time left beyond this is sent as "no deadline" (0): microseconds would overflow what the worker can time. */
const MAX_TIMEOUT_US = 10 * 365 * 24 * 3600 * 1e6;

const EMPTY = Buffer.alloc(0);

/** How long calls on a pipe that ended wait for the worker's exit to tell why (`Pipeline.lost`). */
const EXIT_WAIT_MS = 1000;

function metadataOf(entries: readonly MetadataEntry[]): Metadata {
  const md = new Metadata();
  for (const { key, value } of entries) md.add(key, key.endsWith("-bin") ? Buffer.from(value) : Buffer.from(value).toString("utf8"));
  return md;
}

/**
 * The pipelined transport to one worker: unary calls travel as messages on a single long-lived
 * pipe (`PipeStream`: the socket pair the worker was spawned with, or its
 * `procgrpc.internal.v1.PipelineService/Pipe` bidirectional stream), each tagged with a call
 * id, batched per turn of the event loop. The worker runs them through the same servicer
 * wrappers as plain calls, and this side gives the caller the same results as the plain
 * transport: the same statuses and details, headers and trailers (`AnswerHooks`), deadline,
 * cancellation and lost-worker errors. The conformance suite compares the two.
 */
export class Pipeline implements WorkerCall {
  private readonly pending = new Map<number, PendingCall>();
  /** One timer for the earliest deadline of the calls in flight, not one per call. */
  private readonly deadlines = new DeadlineQueue<number>((callId) => this.expire(callId));
  private nextCallId = 1;
  // Calls and cancellations issued in this turn of the event loop, sent as one stream message.
  private outCalls: PipeCall[] = [];
  private outCancels: number[] = [];
  private flushScheduled = false;
  /** No new calls (half-closed or broken). */
  private closed = false;
  /** The stream ended; nothing more will be answered. */
  private broken = false;
  /** Request files of calls in flight, with the shared-memory lane. */
  private readonly laneFiles: LaneRequestFiles | undefined;

  constructor(
    private readonly target: CallTarget,
    private readonly stream: PipeStream,
    private readonly onClosed: (pipeline: Pipeline) => void,
    /** The pool's shared-memory lane (docs/shared-memory-lane.md), when it has one. */
    private readonly lane?: PipeLane,
  ) {
    this.laneFiles = lane ? new LaneRequestFiles(lane) : undefined;
    this.stream.on("data", (res) => {
      for (const header of res.headers) this.header(header);
      for (const result of res.results) this.answer(result);
    });
    this.stream.on("error", (err) => {
      // A stream that never connected carried none of its calls: they fail as on the plain
      // transport (grpc's details, reachedWorker false), so they are safe to send again.
      if (typeof err.code === "number" && neverSent(err.code, err.details ?? "")) this.breakWith(err.details ?? "", false);
      else this.lost(`pipeline stream to worker ${target.id} failed: ${err.message ?? String(err)}`);
    });
    this.stream.on("end", () => this.lost(`pipeline stream to worker ${target.id} ended`));
    target.calls.add(this);
  }

  /** True while the pipeline takes new calls. */
  get open(): boolean {
    return !this.closed;
  }

  /**
   * Sends one unary call (its request already serialised) and settles with the worker's answer.
   * The lease is released when the call settles, whatever settles it.
   */
  call(out: OutgoingCall, payload: UnaryRequest, lease: Lease): Promise<unknown> {
    const refused = refuseBeforeStart(out, this.target) ?? (this.closed ? this.closedError(out) : undefined);
    if (refused) {
      discardRequest(payload);
      lease.release();
      return Promise.reject(refused);
    }
    const remainingMs = out.deadline.at - Date.now();
    const callId = this.nextCallId++;
    const entry = new PendingCall(out, lease);
    const signal = out.signal;
    if (signal) {
      entry.onAbort = () => this.cancel(callId, errorFromAbort(signal, { ...callFacts(out, this.target), reachedWorker: true }));
      signal.addEventListener("abort", entry.onAbort, { once: true });
    }
    if (Number.isFinite(out.deadline.at)) this.deadlines.add(callId, out.deadline.at);
    this.pending.set(callId, entry);
    const timeoutUs = remainingMs * 1000 >= MAX_TIMEOUT_US ? 0 : Math.max(1, Math.round(remainingMs * 1000));
    const { metadata, requestId, attemptId } = pipeCallMetadata(out);
    // A request already in a lane file (written as it was serialized) sends its reference.
    const payloadRef = payload instanceof LaneRequest ? payload.ref : this.lane?.outgoing(payload);
    if (payloadRef) this.laneFiles?.track(callId, payloadRef);
    this.outCalls.push({ callId, method: out.method.path, payload: payloadRef ? EMPTY : (payload as Buffer), timeoutUs, metadata, requestId, attemptId, payloadRef });
    this.scheduleFlush();
    return entry.promise;
  }

  /** The worker died: every call on the pipeline fails at once with UNAVAILABLE. */
  failWorkerGone(exit: TargetExit): void {
    this.breakWith(`worker ${this.target.id} (pid ${this.target.pid}) exited during the call (${describeExit(exit)})`);
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

  private header(header: PipeHeader): void {
    const entry = this.pending.get(header.callId);
    if (!entry) return;
    const hookError = entry.hooks.header(metadataOf(header.metadata));
    if (hookError) this.cancel(header.callId, hookError);
  }

  private answer(res: PipeResult): void {
    const entry = this.settle(res.callId, res.code === Status.OK); // an OK answer ran, so its request file was read
    if (!entry || res.code !== Status.OK) this.lane?.discard(res.payloadRef);
    if (!entry) return; // A late answer to a call that was cancelled or timed out here.
    if (res.initialMetadata.length > 0) entry.hooks.header(metadataOf(res.initialMetadata));
    const laneFault = this.lane && workerLaneFault(res);
    if (laneFault) return entry.reject(laneProtocolError(laneFault, callFacts(entry.out, this.target)));
    const status = { code: res.code, details: res.details, metadata: metadataOf(res.trailingMetadata) };
    let value: unknown;
    if (res.code === Status.OK) {
      let bytes: Buffer;
      try {
        bytes = this.lane ? this.lane.incoming(res) : res.payload; // decoding PipeResult copied it
      } catch (err) {
        return entry.reject(laneProtocolError(err, callFacts(entry.out, this.target)));
      }
      try {
        value = entry.out.method.deserialize(bytes);
      } catch (err) {
        this.lane?.decoded(undefined);
        entry.reject(new RpcError({ code: Status.INTERNAL, details: `Response message parsing error: ${(err as Error).message}`, category: "protocol", cause: err, ...callFacts(entry.out, this.target) }));
        return;
      }
      this.lane?.decoded(value);
    }
    const outcome = entry.hooks.finish(this.target, status, value);
    if (outcome.ok) entry.resolve(outcome.value);
    else entry.reject(outcome.error);
  }

  /** The call's deadline passed on this side. */
  private expire(callId: number): void {
    const entry = this.pending.get(callId);
    if (entry) this.cancel(callId, deadlineError(entry.out, this.target, true));
  }

  /** Settles a call on this side (deadline, signal, a hook) and tells the worker to cancel it. */
  private cancel(callId: number, err: RpcError): void {
    const entry = this.settle(callId);
    if (!entry) return;
    if (!this.broken && !this.stream.writableEnded) {
      this.outCancels.push(callId);
      this.scheduleFlush();
    }
    entry.reject(err);
  }

  /** Removes a call's state (timer, listener, lease, request file); returns it unless it was already settled. */
  private settle(callId: number, requestFileRead = false): PendingCall | undefined {
    const entry = this.pending.get(callId);
    if (!entry) return undefined;
    this.pending.delete(callId);
    this.deadlines.remove(callId);
    this.laneFiles?.release(callId, requestFileRead);
    if (entry.onAbort) entry.out.signal?.removeEventListener("abort", entry.onAbort);
    entry.lease.release();
    return entry;
  }

  /**
   * The stream ended or failed under calls still waiting: usually the worker is dying, and its
   * exit, seen a moment later, says why ("exited during the call (signal SIGKILL)"), which a
   * broken socket does not. No new calls; the waiting ones fail with the exit's reason, or with
   * the stream's after `EXIT_WAIT_MS` (a worker that lives on without its pipe).
   */
  private lost(details: string): void {
    if (this.broken) return;
    if (this.pending.size === 0) return this.breakWith(details);
    if (!this.closed) {
      this.closed = true;
      this.onClosed(this);
    }
    setTimeout(() => this.breakWith(details), EXIT_WAIT_MS).unref();
  }

  /** The stream is gone: every waiting call fails with UNAVAILABLE (it may have run, unless `reachedWorker` is false). */
  private breakWith(details: string, reachedWorker = true): void {
    if (this.broken) return;
    this.broken = true;
    this.closed = true;
    this.target.calls.delete(this);
    for (const callId of [...this.pending.keys()]) {
      const entry = this.settle(callId);
      entry?.reject(new RpcError({ code: Status.UNAVAILABLE, details, category: "connection", reachedWorker, ...callFacts(entry.out, this.target) }));
    }
    this.deadlines.clear(); // its timer would keep this pipeline reachable until it fired
    this.onClosed(this);
  }

  private closedError(out: OutgoingCall): RpcError {
    return new RpcError({ code: Status.UNAVAILABLE, details: `pipeline to worker ${this.target.id} is closed`, category: "connection", reachedWorker: false, ...callFacts(out, this.target) });
  }
}
