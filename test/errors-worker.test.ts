/**
 * The worker row of the error model: every way a Python servicer can end a call with a status
 * (context.abort, set_code + set_details, abort_with_status, procgrpc.errors classes, built-in
 * exceptions, abort_with_details) arrives in TypeScript as an RpcError with the code, details,
 * trailers and decoded google.rpc details the worker sent; and a response that does not decode
 * is a protocol error.
 */
import { join } from "node:path";
import { Metadata, RpcError, Status, WorkerPool, isWorkerError, isProtocolError, statusName } from "../src";
import {
  CorruptResponse,
  EchoRequest,
  FailRequest_Mode,
  RawServiceDefinition,
  RichFailRequest_Detail as Detail,
  RichFailRequest_Way,
  TestServiceDefinition,
} from "../src/gen/testing/v1/testing";
import { ROOT, testingPool, rejection } from "./helpers/env";

const pool = new WorkerPool(testingPool({ workers: 1 }));
const client = pool.client(TestServiceDefinition);
const raw = pool.client(RawServiceDefinition);
beforeAll(() => pool.start());
afterAll(() => pool.shutdown());

const FAIL = "/testing.v1.TestService/Fail";
const RICH = "/testing.v1.TestService/RichFail";
const NON_OK = Object.values(Status).filter((v): v is Status => typeof v === "number" && v !== Status.OK);
const TRANSIENT = new Set([Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.ABORTED]);


/** Asserts what every worker error shares, then returns it for the specifics. */
function expectWorkerError(err: RpcError, code: Status, method = FAIL): RpcError {
  expect(statusName(err.code())).toBe(statusName(code));
  expect(err.category).toBe("worker");
  expect(isWorkerError(err)).toBe(true);
  expect(err.timeoutKind).toBeUndefined();
  expect(err.retryable).toBe(TRANSIENT.has(code));
  expect(err.countsTowardSlo).toBe(true);
  expect(err.method).toBe(method);
  expect(err.workerId).toBe("w0");
  expect(err.message).toBe(`${statusName(code)}: ${err.details()} (${method})`);
  return err;
}

/** The transport's own keys never show in what the worker sent. */
function expectNoTransportKeys(md: Metadata): void {
  for (const key of ["grpc-status", "grpc-message", "grpc-status-details-bin", "content-type"]) expect(md.get(key)).toEqual([]);
}

describe.each([
  ["context.abort", FailRequest_Mode.MODE_ABORT],
  ["set_code + set_details", FailRequest_Mode.MODE_SET_CODE],
])("%s", (_how, mode) => {
  test.each(NON_OK.map((code) => [statusName(code), code]))("%s arrives with its details and trailers (text and -bin)", async (_name, code) => {
    // Non-ASCII and % exercise grpc-message's percent-encoding both ways.
    const details = `failed with ${statusName(code)}: 100% naïve ✓`;
    const blob = Buffer.from([0, 1, 2, 254, 255]);
    const err = await rejection(
      client.fail({ mode, code, details, trailers: { "x-text": `t-${code}` }, binaryTrailers: { "x-blob-bin": blob } }),
    );
    expectWorkerError(err, code);
    expect(err.details()).toBe(details);
    expect(err.trailingMetadata().get("x-text")).toEqual([`t-${code}`]);
    const [bin] = err.trailingMetadata().get("x-blob-bin");
    expect(Buffer.isBuffer(bin)).toBe(true);
    expect((bin as Buffer).equals(blob)).toBe(true);
    expectNoTransportKeys(err.trailingMetadata());
    expect(err.reachedWorker).toBe(true);
  });
});

test("trailers set on success reach onTrailer (text and -bin)", async () => {
  let trailers: Metadata | undefined;
  await client.fail(
    { mode: FailRequest_Mode.MODE_SET_CODE, code: Status.OK, trailers: { "x-ok": "yes" }, binaryTrailers: { "x-ok-bin": Buffer.from([7]) } },
    { onTrailer: (md) => (trailers = md) },
  );
  expect(trailers?.get("x-ok")).toEqual(["yes"]);
  expect(trailers?.get("x-ok-bin")).toEqual([Buffer.from([7])]);
  expectNoTransportKeys(trailers as Metadata);
});

test("context.abort_with_status with a google.rpc.Status: code, details, decoded ErrorInfo and extra trailers", async () => {
  const err = await rejection(
    client.fail({ mode: FailRequest_Mode.MODE_ABORT_WITH_STATUS, code: Status.FAILED_PRECONDITION, details: "not yet", trailers: { "x-extra": "kept" } }),
  );
  expectWorkerError(err, Status.FAILED_PRECONDITION);
  expect(err.details()).toBe("not yet");
  expect(err.findDetail("ErrorInfo")).toMatchObject({ reason: "TEST", domain: "procgrpc.test" });
  expect(err.statusDetails.map((d) => d.kind)).toEqual(["ErrorInfo"]);
  expect(err.trailingMetadata().get("x-extra")).toEqual(["kept"]);
  expectNoTransportKeys(err.trailingMetadata());
});

const ERROR_CLASSES: [string, Status][] = [
  ["InvalidArgument", Status.INVALID_ARGUMENT],
  ["NotFound", Status.NOT_FOUND],
  ["AlreadyExists", Status.ALREADY_EXISTS],
  ["PermissionDenied", Status.PERMISSION_DENIED],
  ["Unauthenticated", Status.UNAUTHENTICATED],
  ["ResourceExhausted", Status.RESOURCE_EXHAUSTED],
  ["FailedPrecondition", Status.FAILED_PRECONDITION],
  ["Aborted", Status.ABORTED],
  ["OutOfRange", Status.OUT_OF_RANGE],
  ["Unimplemented", Status.UNIMPLEMENTED],
  ["Internal", Status.INTERNAL],
  ["Unavailable", Status.UNAVAILABLE],
  ["DataLoss", Status.DATA_LOSS],
  ["DeadlineExceeded", Status.DEADLINE_EXCEEDED],
  ["Cancelled", Status.CANCELLED],
  ["Unknown", Status.UNKNOWN],
];

test.each(ERROR_CLASSES)("raise procgrpc.errors.%s → its code, the message, ErrorInfo(reason=class, domain python)", async (cls, code) => {
  const err = await rejection(client.fail({ mode: FailRequest_Mode.MODE_RAISE, exception: `procgrpc.errors.${cls}`, details: `raised ${cls}` }));
  expectWorkerError(err, code);
  expect(err.details()).toBe(`raised ${cls}`);
  expect(err.findDetail("ErrorInfo")).toEqual({ reason: cls, domain: "python", metadata: { method: FAIL } });
});

const BUILTINS: [string, Status, string][] = [
  ["ValueError", Status.INVALID_ARGUMENT, "bad"],
  ["LookupError", Status.NOT_FOUND, "bad"],
  ["KeyError", Status.NOT_FOUND, "'bad'"], // a LookupError: the mapping walks the class hierarchy
  ["PermissionError", Status.PERMISSION_DENIED, "bad"],
  // A server-side failure shows the exception's class and the request id, not its text.
  ["NotImplementedError", Status.UNIMPLEMENTED, "NotImplementedError (request id req-builtin; details in the worker log)"],
  ["TimeoutError", Status.DEADLINE_EXCEEDED, "TimeoutError (request id req-builtin; details in the worker log)"],
  ["ConnectionError", Status.UNAVAILABLE, "ConnectionError (request id req-builtin; details in the worker log)"],
  ["MemoryError", Status.RESOURCE_EXHAUSTED, "MemoryError (request id req-builtin; details in the worker log)"],
  ["RuntimeError", Status.UNKNOWN, "RuntimeError (request id req-builtin; details in the worker log)"], // anything unmapped: UNKNOWN
];

test.each(BUILTINS)("raise %s → %s, ErrorInfo(reason=class, domain python)", async (cls, code, details) => {
  const err = await rejection(client.fail({ mode: FailRequest_Mode.MODE_RAISE, exception: cls, details: "bad" }, { requestId: "req-builtin" }));
  expectWorkerError(err, code);
  expect(err.details()).toBe(details);
  expect(err.findDetail("ErrorInfo")).toMatchObject({ reason: cls, domain: "python" });
});

const ALL_DETAILS = [
  Detail.DETAIL_ERROR_INFO,
  Detail.DETAIL_RETRY_INFO,
  Detail.DETAIL_DEBUG_INFO,
  Detail.DETAIL_QUOTA_FAILURE,
  Detail.DETAIL_PRECONDITION_FAILURE,
  Detail.DETAIL_BAD_REQUEST,
  Detail.DETAIL_REQUEST_INFO,
  Detail.DETAIL_RESOURCE_INFO,
  Detail.DETAIL_HELP,
  Detail.DETAIL_LOCALIZED_MESSAGE,
  Detail.DETAIL_UNKNOWN,
];

/** Checks every detail the test worker builds (see _RICH_DETAILS in testing_worker.py). */
function expectAllDetails(err: RpcError, requestId: string): void {
  expect(err.statusDetails.map((d) => d.kind)).toEqual([
    "ErrorInfo", "RetryInfo", "DebugInfo", "QuotaFailure", "PreconditionFailure", "BadRequest",
    "RequestInfo", "ResourceInfo", "Help", "LocalizedMessage", "Unknown",
  ]);
  expect(err.findDetail("ErrorInfo")).toEqual({ reason: "OUT_OF_STOCK", domain: "shop.example", metadata: { sku: "apple" } });
  expect(err.findDetail("RetryInfo")?.retryDelay).toEqual({ seconds: 1, nanos: 500_000_000 });
  expect(err.findDetail("DebugInfo")).toEqual({ stackEntries: ["frame one", "frame two"], detail: "explicit debug detail" });
  expect(err.findDetail("QuotaFailure")?.violations).toMatchObject([{ subject: "project:demo", description: "daily limit reached" }]);
  expect(err.findDetail("PreconditionFailure")?.violations).toEqual([{ type: "TOS", subject: "user:7", description: "terms not accepted" }]);
  expect(err.findDetail("BadRequest")?.fieldViolations).toMatchObject([{ field: "quantity", description: "must be positive" }]);
  expect(err.findDetail("RequestInfo")).toEqual({ requestId, servingData: expect.stringMatching(/^served by pid \d+$/) });
  expect(err.findDetail("ResourceInfo")).toEqual({ resourceType: "sku", resourceName: "apple", owner: "catalog", description: "not in stock" });
  expect(err.findDetail("Help")?.links).toEqual([{ description: "stock levels", url: "https://example.invalid/stock" }]);
  expect(err.findDetail("LocalizedMessage")).toEqual({ locale: "fr-FR", message: "rupture de stock" });
  // A type procgrpc does not know is kept, raw, with its type URL.
  const unknown = err.findDetail("Unknown") as Uint8Array;
  expect(err.statusDetails[10].typeUrl).toBe("type.googleapis.com/testing.v1.EchoRequest");
  expect(EchoRequest.decode(unknown)).toEqual({ text: "opaque", payload: Buffer.from([0, 1]) });
}

test("rich details of every kind, raised with a procgrpc.errors class, decode in TypeScript", async () => {
  const err = await rejection(client.richFail({ exception: "NotFound", message: "no apples", details: ALL_DETAILS }, { requestId: "req-rich-1" }));
  expectWorkerError(err, Status.NOT_FOUND, RICH);
  expect(err.details()).toBe("no apples");
  expect(err.requestId).toBe("req-rich-1");
  expectAllDetails(err, "req-rich-1");
});

test("rich details of every kind via abort_with_details(context, code, message, *details)", async () => {
  const err = await rejection(
    client.richFail({ way: RichFailRequest_Way.WAY_ABORT_WITH_DETAILS, code: Status.FAILED_PRECONDITION, message: "cannot sell", details: ALL_DETAILS }, { requestId: "req-rich-2" }),
  );
  expectWorkerError(err, Status.FAILED_PRECONDITION, RICH);
  expect(err.details()).toBe("cannot sell");
  expectAllDetails(err, "req-rich-2");
});

test("Unavailable(..., retry_after=2.0) exposes RetryInfo and is retryable", async () => {
  const err = await rejection(client.richFail({ exception: "Unavailable", message: "warming up", retryAfter: 2.0 }));
  expectWorkerError(err, Status.UNAVAILABLE, RICH);
  expect(err.retryable).toBe(true);
  expect(err.findDetail("RetryInfo")?.retryDelay).toEqual({ seconds: 2, nanos: 0 });
  expect(err.findDetail("ErrorInfo")).toMatchObject({ reason: "Unavailable", domain: "python" });
});

/** Everything a caller can read from an error, as one string. */
function everythingVisible(err: RpcError): string {
  const md = (m: Metadata): string => JSON.stringify(Object.entries(m.toJSON()).map(([k, vs]) => [k, vs.map((v) => v.toString())]));
  return [err.message, err.details(), md(err.trailingMetadata()), md(err.initialMetadata()), JSON.stringify(err.statusDetails)].join("\n");
}

test("by default no traceback or file path reaches the caller", async () => {
  const err = await rejection(client.fail({ mode: FailRequest_Mode.MODE_RAISE, exception: "RuntimeError", details: "secret internals" }));
  expect(err.details()).toBe(`RuntimeError (request id ${err.requestId}; details in the worker log)`);
  expect(err.details()).not.toContain("secret internals");
  expect(err.findDetail("DebugInfo")).toBeUndefined();
  const visible = everythingVisible(err);
  expect(visible).not.toMatch(/Traceback|\.py\b|File "/);
});

test("with PROCGRPC_DEBUG=1 the worker adds a DebugInfo with the traceback", async () => {
  const debugPool = new WorkerPool(testingPool({ workers: 1, env: { PROCGRPC_DEBUG: "1" } }));
  await debugPool.start();
  try {
    const err = await rejection(debugPool.client(TestServiceDefinition).fail({ mode: FailRequest_Mode.MODE_RAISE, exception: "RuntimeError", details: "boom" }));
    expect(err.code()).toBe(Status.UNKNOWN);
    expect(err.details()).toBe("RuntimeError: boom");
    const debug = err.findDetail("DebugInfo");
    expect(debug?.detail).toBe("RuntimeError: boom");
    expect(debug?.stackEntries.join("")).toContain(join(ROOT, "test", "workers", "testing_worker.py"));
    expect(debug?.stackEntries.join("")).toMatch(/Traceback/);
  } finally {
    await debugPool.shutdown();
  }
});

describe("a response that does not decode as the method's response type", () => {
  test("truncated bytes: INTERNAL (protocol), not retryable, outside the SLO", async () => {
    // Field 1 (string) claims 5 bytes, but only 1 follows.
    const err = await rejection(raw.corrupt({ raw: Buffer.from([0x0a, 0x05, 0x61]) }));
    expect(err.code()).toBe(Status.INTERNAL);
    expect(err.category).toBe("protocol");
    expect(isProtocolError(err)).toBe(true);
    expect(err.details()).toMatch(/^Response message parsing error: /);
    expect(err.retryable).toBe(false);
    expect(err.countsTowardSlo).toBe(false);
    expect(err.method).toBe("/testing.v1.RawService/Corrupt");
    expect(err.workerId).toBe("w0");
  });

  test("an invalid wire type: INTERNAL (protocol)", async () => {
    const err = await rejection(raw.corrupt({ raw: Buffer.from([0x0f]) }));
    expect(err.code()).toBe(Status.INTERNAL);
    expect(err.category).toBe("protocol");
  });

  test("the same path with valid bytes decodes (the fault is the bytes, nothing else)", async () => {
    const bytes = CorruptResponse.encode({ text: "fine", number: 7 }).finish();
    expect(await raw.corrupt({ raw: Buffer.from(bytes) })).toEqual({ text: "fine", number: 7 });
  });
});
