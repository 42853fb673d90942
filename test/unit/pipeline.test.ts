/** How the pipelined transport settles calls (src/transport/pipeline.ts), over a fake stream with fake timers. */
import { EventEmitter } from "node:events";
import { Metadata, type Client } from "@grpc/grpc-js";
import { Status, type RpcError } from "../../src";
import { outgoingMetadata } from "../../src/core/metadata";
import type { PipeRequest, PipeResponse } from "../../src/gen/procgrpc/internal/v1/pipeline";
import type { CallTarget, Lease } from "../../src/transport/call-target";
import type { OutgoingCall } from "../../src/transport/outgoing-call";
import { Pipeline } from "../../src/transport/pipeline";

class FakeStream extends EventEmitter {
  written: PipeRequest[] = [];
  writableEnded = false;
  write(req: PipeRequest): boolean {
    this.written.push(req);
    return true;
  }
  end(): void {
    this.writableEnded = true;
  }
  answer(res: Partial<PipeResponse>): void {
    this.emit("data", { results: [], headers: [], ...res });
  }
}

function setup() {
  const stream = new FakeStream();
  const channel = { makeBidiStreamRequest: () => stream } as unknown as Client;
  const target: CallTarget = { id: "w0", channel, calls: new Set(), pid: 1 };
  const pipeline = new Pipeline(target, stream, () => undefined);
  let released = 0;
  const lease = (): Lease => {
    let done = false;
    return { target, release: () => { if (!done) { done = true; released += 1; } } };
  };
  const headers: unknown[] = [];
  const trailers: unknown[] = [];
  const out = (over: Partial<OutgoingCall> = {}): OutgoingCall => ({
    kind: "unary",
    method: { path: "/a.B/C", serialize: (b) => b as Buffer, deserialize: (b) => b.toString(), idempotent: false },
    metadata: outgoingMetadata(undefined, "req", "call"),
    deadline: { at: Date.now() + 60_000, kind: "per-call" },
    startedAt: Date.now(),
    signal: undefined,
    requestId: "req",
    callId: "call",
    idempotent: false,
    onHeader: (md: Metadata) => headers.push(md.toJSON()),
    onTrailer: (md: Metadata) => trailers.push(md.toJSON()),
    ...over,
  });
  return { stream, target, pipeline, lease, out, released: () => released, headers, trailers };
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test("calls of one turn go out as one message; an answer resolves its call, runs the hooks once and releases the lease once", async () => {
  const { stream, pipeline, lease, out, released, headers, trailers } = setup();
  const a = pipeline.call(out(), Buffer.from("a"), lease());
  const b = pipeline.call(out(), Buffer.from("b"), lease());
  jest.advanceTimersByTime(1); // the flush (setImmediate), not the deadlines
  expect(stream.written).toHaveLength(1);
  expect(stream.written[0].calls.map((c) => c.callId)).toEqual([1, 2]);
  stream.answer({ results: [{ callId: 1, code: 0, details: "", payload: Buffer.from("A"), trailingMetadata: [], initialMetadata: [] }] });
  stream.answer({ results: [{ callId: 1, code: 0, details: "", payload: Buffer.from("again"), trailingMetadata: [], initialMetadata: [] }] });
  await expect(a).resolves.toBe("A");
  expect(headers).toEqual([{}]);
  expect(trailers).toEqual([{}]);
  expect(released()).toBe(1);
  stream.answer({ results: [{ callId: 2, code: Status.NOT_FOUND, details: "nope", payload: Buffer.alloc(0), trailingMetadata: [{ key: "x", value: Buffer.from("y") }], initialMetadata: [] }] });
  await expect(b).rejects.toMatchObject({ category: "worker", reachedWorker: true });
  expect(released()).toBe(2);
});

test("headers sent early reach onHeader before the result, and only once", async () => {
  const { stream, pipeline, lease, out, headers } = setup();
  const a = pipeline.call(out(), Buffer.from("a"), lease());
  jest.advanceTimersByTime(1); // the flush (setImmediate), not the deadlines
  stream.answer({ headers: [{ callId: 1, metadata: [{ key: "early", value: Buffer.from("1") }] }] });
  expect(headers).toEqual([{ early: ["1"] }]);
  stream.answer({ results: [{ callId: 1, code: 0, details: "", payload: Buffer.from("A"), trailingMetadata: [], initialMetadata: [{ key: "early", value: Buffer.from("1") }] }] });
  await a;
  expect(headers).toEqual([{ early: ["1"] }]);
});

test("the deadline settles the call on this side, tells the worker to cancel it, and a late answer is ignored", async () => {
  const { stream, pipeline, lease, out, released, headers } = setup();
  const a = pipeline.call(out({ deadline: { at: Date.now() + 100, kind: "per-call" } }), Buffer.from("a"), lease());
  jest.advanceTimersByTime(100);
  await expect(a).rejects.toMatchObject({ category: "timeout", timeoutKind: "per-call", reachedWorker: true });
  jest.advanceTimersByTime(1); // the flush (setImmediate), not the deadlines
  expect(stream.written.flatMap((w) => w.cancel)).toEqual([1]);
  stream.answer({ results: [{ callId: 1, code: 0, details: "", payload: Buffer.from("late"), trailingMetadata: [], initialMetadata: [] }] });
  expect(released()).toBe(1);
  expect(headers).toEqual([]);
});

test("the caller's signal cancels; an aborted signal before sending refuses the call without sending it", async () => {
  const { stream, pipeline, lease, out, released } = setup();
  const ac = new AbortController();
  const a = pipeline.call(out({ signal: ac.signal }), Buffer.from("a"), lease());
  ac.abort();
  await expect(a).rejects.toMatchObject({ category: "cancelled" });
  const before = new AbortController();
  before.abort();
  await expect(pipeline.call(out({ signal: before.signal }), Buffer.from("b"), lease())).rejects.toMatchObject({ category: "cancelled", reachedWorker: false });
  jest.advanceTimersByTime(1); // the flush (setImmediate), not the deadlines
  expect(stream.written.flatMap((w) => w.calls.map((c) => c.callId))).toEqual([1]);
  expect(released()).toBe(2);
});

test("the stream breaking closes the pipeline at once; its waiting calls fail with UNAVAILABLE (they may have run) when no exit explains it within a second", async () => {
  const { stream, pipeline, lease, out, released } = setup();
  const calls = [pipeline.call(out(), Buffer.from("a"), lease()), pipeline.call(out(), Buffer.from("b"), lease())];
  const settled: unknown[] = [];
  for (const c of calls) c.catch((e: unknown) => settled.push(e));
  stream.emit("error", new Error("boom"));
  expect(pipeline.open).toBe(false);
  const err = (await pipeline.call(out(), Buffer.from("c"), lease()).catch((e: RpcError) => e)) as RpcError;
  expect(err.reachedWorker).toBe(false);
  await jest.advanceTimersByTimeAsync(999);
  expect(settled).toEqual([]);
  await jest.advanceTimersByTimeAsync(1);
  for (const c of calls) await expect(c).rejects.toMatchObject({ category: "connection", reachedWorker: true, statusMessage: expect.stringContaining("boom") });
  expect(released()).toBe(3);
});

test("a stream that ends under waiting calls lets the worker's exit give their reason", async () => {
  const { stream, pipeline, lease, out, released } = setup();
  const call = pipeline.call(out(), Buffer.from("a"), lease());
  stream.emit("end");
  pipeline.failWorkerGone({ code: null, signal: "SIGKILL" });
  const err = (await call.catch((e: unknown) => e)) as RpcError;
  expect(err.code()).toBe(Status.UNAVAILABLE);
  expect(err.details()).toContain("exited during the call (signal SIGKILL)");
  expect(released()).toBe(1);
});

test("a stream that never connected carried nothing: its calls fail as on the plain transport, UNAVAILABLE with grpc's details and reachedWorker false", async () => {
  const { stream, pipeline, lease, out, released } = setup();
  const calls = [pipeline.call(out(), Buffer.from("a"), lease()), pipeline.call(out(), Buffer.from("b"), lease())];
  const details = "No connection established. Last error: Error: connect ECONNREFUSED /tmp/w0.sock";
  stream.emit("error", Object.assign(new Error(`14 UNAVAILABLE: ${details}`), { code: Status.UNAVAILABLE, details }));
  for (const c of calls) await expect(c).rejects.toMatchObject({ category: "connection", reachedWorker: false, statusMessage: details });
  expect(released()).toBe(2);
  expect(pipeline.open).toBe(false);
});

test("close() half-closes after sending the turn's calls; answers still arrive", async () => {
  const { stream, pipeline, lease, out } = setup();
  const a = pipeline.call(out(), Buffer.from("a"), lease());
  pipeline.close();
  jest.advanceTimersByTime(1); // the flush (setImmediate), not the deadlines
  expect(stream.written.flatMap((w) => w.calls.map((c) => c.callId))).toEqual([1]);
  expect(stream.writableEnded).toBe(true);
  stream.answer({ results: [{ callId: 1, code: 0, details: "", payload: Buffer.from("A"), trailingMetadata: [], initialMetadata: [] }] });
  await expect(a).resolves.toBe("A");
});

test("the request id and the attempt id travel as PipeCall fields when they come last; other metadata stays entries, in order", () => {
  const { stream, pipeline, lease, out } = setup();
  void pipeline.call(out(), Buffer.from("a"), lease());
  void pipeline.call(out({ metadata: outgoingMetadata({ a: "1", "b-bin": Buffer.from([1, 2]) }, "req", "call") }), Buffer.from("b"), lease());
  // The caller set x-request-id first: it keeps its place as an entry; the attempt id (always last) is a field.
  void pipeline.call(out({ metadata: outgoingMetadata({ "x-request-id": "req", a: "1" }, "req", "call") }), Buffer.from("c"), lease());
  jest.advanceTimersByTime(1); // the flush (setImmediate), not the deadlines
  const [plain, withEntries, idFirst] = stream.written[0].calls;
  expect(plain).toMatchObject({ metadata: [], requestId: "req", attemptId: "call" });
  expect(withEntries).toMatchObject({ requestId: "req", attemptId: "call" });
  expect(withEntries.metadata.map((e) => [e.key, Buffer.from(e.value)])).toEqual([["a", Buffer.from("1")], ["b-bin", Buffer.from([1, 2])]]);
  expect(idFirst).toMatchObject({ requestId: "", attemptId: "call" });
  expect(idFirst.metadata.map((e) => [e.key, Buffer.from(e.value).toString()])).toEqual([["x-request-id", "req"], ["a", "1"]]);
});

test("one timer serves every call's deadline: calls that finish leave none behind", async () => {
  const { stream, pipeline, lease, out } = setup();
  const calls = [1, 2, 3].map((i) => pipeline.call(out(), Buffer.from(String(i)), lease()));
  jest.advanceTimersByTime(1);
  expect(jest.getTimerCount()).toBe(1);
  stream.answer({ results: [1, 2, 3].map((callId) => ({ callId, code: 0, details: "", payload: Buffer.from("A"), trailingMetadata: [], initialMetadata: [] })) });
  await Promise.all(calls);
  // The timer stays for the next calls (unref'd) and fires once on nothing.
  expect(jest.getTimerCount()).toBe(1);
  jest.advanceTimersByTime(60_000);
  expect(jest.getTimerCount()).toBe(0);
});
