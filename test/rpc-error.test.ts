/**
 * Pure unit tests of RpcError: normalising anything thrown (`RpcError.from`), recognising an
 * RpcError from another copy of procgrpc (`isRpcError`), the predicates, the message format and
 * the category table. The integration files (errors-*.test.ts) produce each row from real faults.
 */
import { Metadata, RpcError, Status, decodeStatusDetails, isConnectionError, isLifecycleError, isProtocolError, isRpcError, isTimeout, isWorkerError } from "../src";
import { Any } from "../src/gen/google/protobuf/any";
import { ErrorInfo } from "../src/gen/google/rpc/error_details";
import { Status as RpcStatus } from "../src/gen/google/rpc/status";
import { retryPolicyFor } from "../src/core/retryability";

type RpcErrorModule = typeof import("../src/core/rpc-error");

/** A second, independent copy of the module, as when two versions of procgrpc are installed. */
function duplicateCopy(): RpcErrorModule {
  let copy: RpcErrorModule | undefined;
  jest.isolateModules(() => {
    copy = jest.requireActual<RpcErrorModule>("../src/core/rpc-error");
  });
  return copy as RpcErrorModule;
}

describe("isRpcError across copies of the package", () => {
  const copy = duplicateCopy();
  const foreign = new copy.RpcError({ code: Status.UNAVAILABLE, details: "from the other copy", category: "connection", method: "/a.B/C" });

  test("the copy really is another class, and instanceof recognises its errors both ways", () => {
    expect(copy.RpcError).not.toBe(RpcError);
    expect(foreign instanceof RpcError).toBe(true);
    expect(new RpcError({ code: Status.INTERNAL, details: "ours", category: "protocol" }) instanceof copy.RpcError).toBe(true);
    expect(new Error("plain") instanceof RpcError).toBe(false);
  });

  test("isRpcError and the predicates recognise it both ways", () => {
    expect(isRpcError(foreign)).toBe(true);
    expect(isConnectionError(foreign)).toBe(true);
    const ours = new RpcError({ code: Status.INTERNAL, details: "ours", category: "protocol" });
    expect(copy.isRpcError(ours)).toBe(true);
    expect(copy.isProtocolError(ours)).toBe(true);
  });

  test("RpcError.from returns a foreign RpcError as it is", () => {
    expect(RpcError.from(foreign)).toBe(foreign);
  });

  test("the brand is what counts, not the shape", () => {
    const branded = Object.defineProperty({}, Symbol.for("procgrpc.RpcError"), { value: true });
    expect(isRpcError(branded)).toBe(true);
    const lookalike = Object.assign(new Error("UNAVAILABLE: x"), { name: "RpcError", category: "connection", code: () => 14 });
    expect(isRpcError(lookalike)).toBe(false);
    for (const v of [undefined, null, 0, "RpcError", {}]) expect(isRpcError(v)).toBe(false);
  });
});

describe("RpcError.from(anything)", () => {
  test("an RpcError is returned as it is", () => {
    const err = new RpcError({ code: Status.NOT_FOUND, details: "x", category: "worker" });
    expect(RpcError.from(err)).toBe(err);
  });

  test("an AbortError (AbortController.abort()) becomes CANCELLED", () => {
    const c = new AbortController();
    c.abort();
    const err = RpcError.from(c.signal.reason, "/a.B/C");
    expect(err.code()).toBe(Status.CANCELLED);
    expect(err.category).toBe("cancelled");
    expect(err.method).toBe("/a.B/C");
    expect(err.cause).toBe(c.signal.reason);
  });

  test("a TimeoutError (AbortSignal.timeout) becomes DEADLINE_EXCEEDED, kind context", async () => {
    const signal = AbortSignal.timeout(1);
    await new Promise((r) => setTimeout(r, 20));
    const err = RpcError.from(signal.reason);
    expect(err.code()).toBe(Status.DEADLINE_EXCEEDED);
    expect(isTimeout(err)).toBe(true);
    expect(err.timeoutKind).toBe("context");
  });

  test("a grpc-js status error keeps its code, details and metadata", () => {
    const md = new Metadata();
    md.set("x-why", "because");
    const grpcErr = Object.assign(new Error("5 NOT_FOUND: gone"), { code: 5, details: "gone", metadata: md });
    const err = RpcError.from(grpcErr, "/a.B/C");
    expect(err.code()).toBe(Status.NOT_FOUND);
    expect(err.details()).toBe("gone");
    expect(isWorkerError(err)).toBe(true);
    expect(err.trailingMetadata().get("x-why")).toEqual(["because"]);
    expect(err.cause).toBe(grpcErr);
  });

  test("any other Error is UNKNOWN (protocol: a fault in the call path), its message kept", () => {
    const cause = new TypeError("cannot read properties of undefined");
    const err = RpcError.from(cause);
    expect(err.code()).toBe(Status.UNKNOWN);
    expect(err.category).toBe("protocol");
    expect(err.details()).toBe("cannot read properties of undefined");
    expect(err.cause).toBe(cause);
    expect(err.retryable).toBe(false);
  });

  test.each([["a string", "boom", "boom"], ["a number", 42, "42"], ["null", null, "null"], ["undefined", undefined, "undefined"], ["an object", { a: 1 }, "[object Object]"]])(
    "%s becomes UNKNOWN with the value as details and as cause",
    (_what, value, details) => {
      const err = RpcError.from(value);
      expect(err).toBeInstanceOf(RpcError);
      expect(err.code()).toBe(Status.UNKNOWN);
      expect(err.details()).toBe(details);
      expect(err.cause).toBe(value);
    },
  );
});

describe("the shape of an RpcError", () => {
  test("message reads `<STATUS_NAME>: <details> (<method>)`, without the method when there is none", () => {
    expect(new RpcError({ code: Status.DATA_LOSS, details: "lost", category: "worker", method: "/a.B/C" }).message).toBe("DATA_LOSS: lost (/a.B/C)");
    expect(new RpcError({ code: Status.DATA_LOSS, details: "lost", category: "worker" }).message).toBe("DATA_LOSS: lost");
    expect(new RpcError({ code: Status.OK, details: "", category: "worker" })).toBeInstanceOf(Error);
  });

  test("timeoutKind exists only for timeouts", () => {
    expect(new RpcError({ code: Status.DEADLINE_EXCEEDED, details: "", category: "timeout", timeoutKind: "transport" }).timeoutKind).toBe("transport");
    expect(new RpcError({ code: Status.DEADLINE_EXCEEDED, details: "", category: "worker", timeoutKind: "transport" }).timeoutKind).toBeUndefined();
  });

  test("with() copies, replacing what is given and keeping the rest", () => {
    const first = new RpcError({ code: Status.UNAVAILABLE, details: "down", category: "connection", method: "/a.B/C", workerId: "w1", reachedWorker: false });
    const later = first.with({ attempts: 3, attemptCodes: [Status.UNAVAILABLE, Status.UNAVAILABLE, Status.UNAVAILABLE] });
    expect(later).not.toBe(first);
    expect(later.attempts).toBe(3);
    expect(later.workerId).toBe("w1");
    expect(later.reachedWorker).toBe(false);
    expect(later.retryable).toBe(first.retryable);
    expect(first.attempts).toBe(1);
  });

  test("each predicate matches its category only", () => {
    const preds = { timeout: isTimeout, connection: isConnectionError, protocol: isProtocolError, worker: isWorkerError, lifecycle: isLifecycleError } as const;
    for (const [category, pred] of Object.entries(preds)) {
      const err = new RpcError({ code: Status.UNKNOWN, details: "", category: category as keyof typeof preds });
      for (const [other, otherPred] of Object.entries(preds)) expect(otherPred(err)).toBe(other === category);
    }
    expect(isTimeout(new Error("timeout"))).toBe(false);
  });
});

describe("the category table (docs/errors.md)", () => {
  const call = (idempotent: boolean, reachedWorker = true) => ({ idempotent, reachedWorker });
  test.each([
    ["timeout, not idempotent", "timeout", Status.DEADLINE_EXCEEDED, call(false), false, true],
    ["timeout, idempotent", "timeout", Status.DEADLINE_EXCEEDED, call(true), true, true],
    ["connection, never reached the worker", "connection", Status.UNAVAILABLE, call(false, false), true, true],
    ["connection, reached, not idempotent", "connection", Status.UNAVAILABLE, call(false), false, true],
    ["connection, reached, idempotent", "connection", Status.UNAVAILABLE, call(true), true, true],
    ["protocol", "protocol", Status.INTERNAL, call(true), false, false],
    ["worker UNAVAILABLE", "worker", Status.UNAVAILABLE, call(false), true, true],
    ["worker RESOURCE_EXHAUSTED", "worker", Status.RESOURCE_EXHAUSTED, call(false), true, true],
    ["worker ABORTED", "worker", Status.ABORTED, call(false), true, true],
    ["worker INVALID_ARGUMENT, even if idempotent", "worker", Status.INVALID_ARGUMENT, call(true), false, true],
    ["lifecycle not started / shut down", "lifecycle", Status.FAILED_PRECONDITION, call(true), false, false],
    ["lifecycle no ready worker", "lifecycle", Status.UNAVAILABLE, call(false, false), true, false],
    ["cancelled", "cancelled", Status.CANCELLED, call(true), false, false],
  ] as const)("%s", (_row, category, code, facts, retryable, countsTowardSlo) => {
    expect(retryPolicyFor(category, code, facts)).toEqual({ retryable, countsTowardSlo });
  });
});

describe("decodeStatusDetails", () => {
  const pack = (typeUrl: string, value: Uint8Array) => Any.fromPartial({ typeUrl, value: Buffer.from(value) });
  test("known kinds decode, unknown and malformed ones are kept raw", () => {
    const info = ErrorInfo.encode({ reason: "R", domain: "d", metadata: {} }).finish();
    const bytes = RpcStatus.encode({
      code: 5,
      message: "m",
      details: [pack("type.googleapis.com/google.rpc.ErrorInfo", info), pack("type.googleapis.com/acme.v1.Thing", Uint8Array.of(1, 2)), pack("type.googleapis.com/google.rpc.RetryInfo", Uint8Array.of(0xff))],
    }).finish();
    const decoded = decodeStatusDetails(bytes);
    expect(decoded?.code).toBe(5);
    expect(decoded?.details.map((d) => d.kind)).toEqual(["ErrorInfo", "Unknown", "Unknown"]);
    expect(decoded?.details[0].value).toEqual({ reason: "R", domain: "d", metadata: {} });
    expect(decoded?.details[1]).toEqual({ kind: "Unknown", typeUrl: "type.googleapis.com/acme.v1.Thing", value: Uint8Array.of(1, 2) });
  });

  test("bytes that are not a google.rpc.Status give undefined", () => {
    expect(decodeStatusDetails(Uint8Array.of(0x0f))).toBeUndefined();
  });
});
