/** The classification table (src/transport/grpc-status.ts): every grpc-js local failure and worker status, pure. */
import { Metadata } from "@grpc/grpc-js";
import { Status, isSwitchedOff } from "../../src";
import { ErrorInfo } from "../../src/gen/google/rpc/error_details";
import { Status as StatusProto } from "../../src/gen/google/rpc/status";
import { rpcErrorFromStatus, WORKER_STOPPING_KEY } from "../../src/transport/grpc-status";

const facts = { method: "/a.B/C", workerId: "w0", requestId: "r", idempotent: false, deadlineAt: Date.now() + 60_000, deadlineKind: "per-call" as const, startedAt: Date.now() };
const classify = (code: Status, details: string, metadata?: Metadata, extra: Partial<typeof facts & { targetStopping: boolean }> = {}) => {
  const e = rpcErrorFromStatus({ code, details, metadata }, { ...facts, ...extra });
  return { code: e.code(), category: e.category, reachedWorker: e.reachedWorker, retryable: e.retryable };
};

test.each([
  ["never delivered", Status.UNAVAILABLE, "No connection established. Last error: connect ENOENT /tmp/x.sock", { code: Status.UNAVAILABLE, category: "connection", reachedWorker: false, retryable: true }],
  ["never delivered, behind a balancer", Status.UNAVAILABLE, "round_robin: No connection established. Last error: connect ECONNREFUSED", { code: Status.UNAVAILABLE, category: "connection", reachedWorker: false, retryable: true }],
  ["not HTTP/2", Status.UNAVAILABLE, "No connection established. Last error: Protocol error (2026-01-01T00:00:00.000Z)", { code: Status.INTERNAL, category: "protocol", reachedWorker: false, retryable: false }],
  ["not HTTP/2, nested", Status.UNAVAILABLE, "round_robin: No connection established. Last error: No connection established. Last error: Protocol error", { code: Status.INTERNAL, category: "protocol", reachedWorker: false, retryable: false }],
  ["connection dropped mid-call", Status.UNAVAILABLE, "Connection dropped", { code: Status.UNAVAILABLE, category: "connection", reachedWorker: true, retryable: false }],
  ["response over the receive limit", Status.RESOURCE_EXHAUSTED, "Received message larger than max (10000 vs 1024)", { code: Status.RESOURCE_EXHAUSTED, category: "protocol", reachedWorker: true, retryable: false }],
  ["request over the send limit", Status.RESOURCE_EXHAUSTED, "Attempted to send message with a size larger than 10", { code: Status.RESOURCE_EXHAUSTED, category: "protocol", reachedWorker: false, retryable: false }],
  ["request metadata refused by the server", Status.RESOURCE_EXHAUSTED, "received metadata size exceeds hard limit (17215 vs. 16384)", { code: Status.RESOURCE_EXHAUSTED, category: "protocol", reachedWorker: false, retryable: false }],
  ["a stream cut without status", Status.INTERNAL, "Received RST_STREAM with code 2 (Internal server error)", { code: Status.INTERNAL, category: "protocol", reachedWorker: true, retryable: false }],
  ["undecodable response", Status.INTERNAL, "Response message parsing error: index out of range", { code: Status.INTERNAL, category: "protocol", reachedWorker: true, retryable: false }],
  ["the worker's own RESOURCE_EXHAUSTED", Status.RESOURCE_EXHAUSTED, "queue full, try later", { code: Status.RESOURCE_EXHAUSTED, category: "worker", reachedWorker: true, retryable: true }],
  ["the worker's own UNAVAILABLE mentioning ECONNRESET", Status.UNAVAILABLE, "upstream said read ECONNRESET", { code: Status.UNAVAILABLE, category: "worker", reachedWorker: true, retryable: true }],
  ["the worker's NOT_FOUND", Status.NOT_FOUND, "no such sku", { code: Status.NOT_FOUND, category: "worker", reachedWorker: true, retryable: false }],
  ["an invalid status code", 42 as Status, "?", { code: Status.INTERNAL, category: "protocol", reachedWorker: true, retryable: false }],
] as const)("%s", (_name, code, details, expected) => {
  expect(classify(code, details)).toEqual(expected);
});

test("a worker ending calls because it is shutting down is a lost connection (retried only when idempotent)", () => {
  const md = new Metadata();
  md.set(WORKER_STOPPING_KEY, "1");
  expect(classify(Status.UNAVAILABLE, "worker is shutting down", md)).toEqual({ code: Status.UNAVAILABLE, category: "connection", reachedWorker: true, retryable: false });
  expect(rpcErrorFromStatus({ code: Status.UNAVAILABLE, details: "x", metadata: md }, { ...facts, idempotent: true }).retryable).toBe(true);
});

test("a stream cut by a worker being stopped is a lost connection", () => {
  expect(classify(Status.INTERNAL, "Received RST_STREAM with code 0 (Call ended without gRPC status)", undefined, { targetStopping: true })).toMatchObject({ code: Status.UNAVAILABLE, category: "connection" });
});

test("DEADLINE_EXCEEDED: from grpc-js's timer or at the deadline it is a timeout with one wording; earlier it is the servicer's", () => {
  const local = rpcErrorFromStatus({ code: Status.DEADLINE_EXCEEDED, details: "Deadline exceeded after 0.101s,remote_addr=/tmp/s.sock", metadata: undefined }, { ...facts, startedAt: facts.deadlineAt - 100 });
  expect(local).toMatchObject({ category: "timeout", timeoutKind: "per-call" });
  expect(local.details()).toBe("Deadline exceeded after 100 ms");
  const servicer = rpcErrorFromStatus({ code: Status.DEADLINE_EXCEEDED, details: "upstream timed out", metadata: undefined }, facts);
  expect(servicer).toMatchObject({ category: "worker" });
  expect(servicer.details()).toBe("upstream timed out");
});

test("a worker's kill-switch refusal (ErrorInfo SWITCHED_OFF) is a lifecycle error, not retryable, like the pool's own", () => {
  const info = ErrorInfo.encode({ reason: "SWITCHED_OFF", domain: "procgrpc", metadata: { method: "/a.B/C", target: "/a.B/C" } }).finish();
  const status = StatusProto.encode({ code: Status.UNAVAILABLE, message: "off", details: [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(info) }] }).finish();
  const md = new Metadata();
  md.set("grpc-status-details-bin", Buffer.from(status));
  const e = rpcErrorFromStatus({ code: Status.UNAVAILABLE, details: "/a.B/C is switched off", metadata: md }, facts);
  expect({ category: e.category, retryable: e.retryable, reachedWorker: e.reachedWorker, switchedOff: isSwitchedOff(e) }).toEqual({ category: "lifecycle", retryable: false, reachedWorker: true, switchedOff: true });
  // Another ErrorInfo on UNAVAILABLE stays the worker's.
  const other = StatusProto.encode({ code: Status.UNAVAILABLE, message: "x", details: [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(ErrorInfo.encode({ reason: "BUSY", domain: "shop", metadata: {} }).finish()) }] }).finish();
  const md2 = new Metadata();
  md2.set("grpc-status-details-bin", Buffer.from(other));
  expect(rpcErrorFromStatus({ code: Status.UNAVAILABLE, details: "x", metadata: md2 }, facts).category).toBe("worker");
});
