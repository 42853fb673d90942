/**
 * Transport conformance: every way a servicer can answer, every kind of bad input, cancellation
 * at each instant and the odd deadlines, run through a pool of each transport. They must give
 * the caller identical results: each case is compared between the transports, not only against
 * constants. The pipelined pool is the default (what users get: its pipeline on the worker's
 * socket pair); "unary" is plain gRPC; "pipelined:grpc-stream" is the pipeline on a gRPC stream.
 */
import { join } from "node:path";
import { Metadata, RpcError, Status, WorkerPool, type CallOptions } from "../src";
import { ConformanceServiceDefinition, RespondRequest_CodeForm, RespondRequest_Mode, type RespondRequest } from "../src/gen/testing/v1/conformance";
import { LANE_OPTIONS, PIPE_CARRIER_OPTIONS, PYTHON, TRANSPORTS, WORKERS, rejection } from "./helpers/env";
import { silentLogger } from "../src";

/** The compared paths: each transport, and the pipeline on its other carrier. */
const PATHS = [...TRANSPORTS, "pipelined:grpc-stream"] as const;
type Transport = (typeof PATHS)[number];

// One worker per pool: Record/Executions count executions in the worker's memory.
function conformancePool(path: Transport, overrides: Record<string, unknown> = {}): WorkerPool {
  const transport = path === "unary" ? "unary" : "pipelined";
  const carrier = path === "pipelined:grpc-stream" ? { pipelineCarrier: "grpc-stream" as const } : PIPE_CARRIER_OPTIONS;
  return new WorkerPool({ workers: 1, python: PYTHON, script: join(WORKERS, "conformance_worker.py"), startTimeoutMs: 20000, logger: silentLogger, transport, ...carrier, ...LANE_OPTIONS, ...overrides });
}

const pools = Object.fromEntries(PATHS.map((t) => [t, conformancePool(t)])) as Record<Transport, WorkerPool>;
const clientsOf = Object.fromEntries(PATHS.map((t) => [t, pools[t].client(ConformanceServiceDefinition)]));
const client = (t: Transport): ReturnType<typeof conformanceClient> => clientsOf[t] as ReturnType<typeof conformanceClient>;
function conformanceClient(pool: WorkerPool) {
  return pool.client(ConformanceServiceDefinition);
}
beforeAll(() => Promise.all(PATHS.map((t) => pools[t].start())));
afterAll(() => Promise.all(PATHS.map((t) => pools[t].shutdown())));

/** Metadata as plain JSON (binary values as base64), for comparing. */
function json(md: Metadata): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, vs] of Object.entries(md.toJSON())) out[k] = vs.map((v) => (typeof v === "string" ? v : `b64:${Buffer.from(v).toString("base64")}`));
  return out;
}

/** Everything the caller can see of one call. */
interface Observation {
  ok: boolean;
  response?: unknown;
  code?: Status;
  details?: string;
  category?: string;
  timeoutKind?: string;
  retryable?: boolean;
  reachedWorker?: boolean;
  initial?: Record<string, string[]>;
  trailing?: Record<string, string[]>;
  statusDetails?: unknown[];
  headers: Record<string, string[]>[];
  trailers: Record<string, string[]>[];
}

async function observe(run: (options: CallOptions) => Promise<unknown>, options: CallOptions = {}): Promise<Observation> {
  const headers: Record<string, string[]>[] = [];
  const trailers: Record<string, string[]>[] = [];
  const hooked: CallOptions = { ...options, onHeader: (md) => headers.push(json(md)), onTrailer: (md) => trailers.push(json(md)) };
  try {
    const response = await run(hooked);
    return { ok: true, response, headers, trailers };
  } catch (e) {
    if (!(e instanceof RpcError)) throw e;
    return {
      ok: false,
      code: e.code(),
      details: e.details(),
      category: e.category,
      timeoutKind: e.timeoutKind,
      retryable: e.retryable,
      reachedWorker: e.reachedWorker,
      initial: json(e.initialMetadata()),
      trailing: json(e.trailingMetadata()),
      statusDetails: e.statusDetails.map((d) => ({ kind: d.kind, value: d.kind === "Unknown" ? "raw" : d.value })),
      headers,
      trailers,
    };
  }
}

/** Runs `run` on every transport (and carrier) and checks that they agree; returns the default transport's observation. */
async function sameOnEveryTransport(run: (t: Transport, options: CallOptions) => Promise<unknown>, options: CallOptions = {}): Promise<Observation> {
  const seen = await Promise.all(PATHS.map((t) => observe((o) => run(t, o), options)));
  for (let i = 1; i < seen.length; i++) expect({ transport: PATHS[i], ...seen[i] }).toEqual({ transport: PATHS[i], ...seen[0] });
  return seen[0];
}

const ALL_CODES = Array.from({ length: 16 }, (_, i) => i + 1);
const MODES = [
  ["abort", RespondRequest_Mode.MODE_ABORT, RespondRequest_CodeForm.CODE_FORM_UNSPECIFIED],
  ["abort(int)", RespondRequest_Mode.MODE_ABORT, RespondRequest_CodeForm.CODE_FORM_INT],
  ["set_code", RespondRequest_Mode.MODE_SET_CODE, RespondRequest_CodeForm.CODE_FORM_UNSPECIFIED],
  ["set_code(int)", RespondRequest_Mode.MODE_SET_CODE, RespondRequest_CodeForm.CODE_FORM_INT],
  ["abort_with_status", RespondRequest_Mode.MODE_ABORT_WITH_STATUS, RespondRequest_CodeForm.CODE_FORM_UNSPECIFIED],
  ["abort_with_status(int)", RespondRequest_Mode.MODE_ABORT_WITH_STATUS, RespondRequest_CodeForm.CODE_FORM_INT],
] as const;

describe.each([
  ["def", "respond"],
  ["async def", "respondAsync"],
] as const)("a %s servicer", (_kind, method) => {
  const call = (t: Transport, request: Partial<RespondRequest>, options: CallOptions) => client(t)[method](request, options);

  test.each(MODES)("%s with each of the 16 codes: the code and details the servicer set, the same on every transport", async (_name, mode, codeForm) => {
    for (const code of ALL_CODES) {
      const seen = await sameOnEveryTransport((t, o) => call(t, { mode, code, codeForm, details: `status ${code}` }, o));
      expect(seen).toMatchObject({ ok: false, code, details: `status ${code}` });
    }
  });

  test("an OK answer: headers once (empty when none were sent) before the trailers, once", async () => {
    const seen = await sameOnEveryTransport((t, o) => call(t, { text: "hi" }, o));
    expect(seen).toMatchObject({ ok: true, response: { text: "hi" }, headers: [{}], trailers: [{}] });
  });

  test.each(MODES)("%s with code 0 (OK): what grpcio makes of it, the same on every transport", async (_name, mode, codeForm) => {
    await sameOnEveryTransport((t, o) => call(t, { mode, code: Status.OK, codeForm, details: "ok?", text: "t" }, o));
  });

  test("the servicer context reports the same call state on every transport", async () => {
    const seen = await sameOnEveryTransport((t, o) => call(t, { reportContext: true }, o));
    expect(seen.ok).toBe(true);
    expect(JSON.parse((seen.response as { context: string }).context)).toMatchObject({ is_active: true, code: null, details: "" });
  });

  test("initial and trailing metadata, text and binary, on success and on failure", async () => {
    const md = { initial: { "x-initial": "one" }, initialBin: { "x-initial-bin": Buffer.from([0, 1, 255]) }, trailing: { "x-trailing": "two" }, trailingBin: { "x-trailing-bin": Buffer.from([9, 8]) } };
    const ok = await sameOnEveryTransport((t, o) => call(t, { text: "m", ...md }, o));
    expect(ok.headers).toEqual([{ "x-initial": ["one"], "x-initial-bin": ["b64:AAH/"] }]);
    expect(ok.trailers).toEqual([{ "x-trailing": ["two"], "x-trailing-bin": ["b64:CQg="] }]);
    const failed = await sameOnEveryTransport((t, o) => call(t, { mode: RespondRequest_Mode.MODE_ABORT, code: Status.NOT_FOUND, details: "gone", ...md }, o));
    expect(failed).toMatchObject({ initial: { "x-initial": ["one"] }, trailing: { "x-trailing": ["two"], "x-trailing-bin": ["b64:CQg="] } });
  });

  test("details with non-ASCII, non-BMP characters and inner whitespace", async () => {
    for (const details of ["é ü ß", "😀 emoji", "tab\tinside", "line\nbreak", "%41 not an escape", "", " leading space", "trailing space ", "  both  "]) {
      const seen = await sameOnEveryTransport((t, o) => call(t, { mode: RespondRequest_Mode.MODE_ABORT, code: Status.FAILED_PRECONDITION, details }, o));
      expect(seen.details).toBe(details);
    }
  });

  test("details with edge spaces after set_code/set_details, and in an exception message, arrive exactly", async () => {
    const set = await sameOnEveryTransport((t, o) => call(t, { mode: RespondRequest_Mode.MODE_SET_CODE, code: Status.ABORTED, details: " spaced " }, o));
    expect(set).toMatchObject({ code: Status.ABORTED, details: " spaced ", statusDetails: [] });
    const raised = await sameOnEveryTransport((t, o) => call(t, { mode: RespondRequest_Mode.MODE_RAISE, exception: "ValueError", details: "bad " }, o));
    expect(raised).toMatchObject({ code: Status.INVALID_ARGUMENT, details: "bad " });
  });

  test("metadata the transports cannot carry alike is refused the same way: INTERNAL naming the problem", async () => {
    const cases: Partial<RespondRequest>[] = [
      { trailing: { "x-t": "non-ASCII é" } },
      { trailing: { "x-t": " edge space" } },
      { trailing: { "x-t": "z".repeat(20_000) } },
      { initial: { "x-i": "non-ASCII é" } },
      { trailing: { "grpc-status": "0" } },
    ];
    for (const md of cases) {
      for (const mode of [RespondRequest_Mode.MODE_UNSPECIFIED, RespondRequest_Mode.MODE_ABORT]) {
        const seen = await sameOnEveryTransport((t, o) => call(t, { ...md, mode, code: Status.NOT_FOUND, details: "x" }, o));
        expect(seen).toMatchObject({ ok: false, code: Status.INTERNAL, category: "worker" });
        expect(seen.details).toMatch(/^invalid (initial|trailing) metadata set by the servicer: /);
      }
    }
    // Other grpc-* keys are the servicer's (e.g. server pushback): carried alike.
    const pushback = await sameOnEveryTransport((t, o) => call(t, { mode: RespondRequest_Mode.MODE_ABORT, code: Status.UNAVAILABLE, details: "busy", trailing: { "grpc-retry-pushback-ms": "50", "grpc-custom": "x" } }, o));
    expect(pushback.trailing).toMatchObject({ "grpc-retry-pushback-ms": ["50"] });
    // The worker is still fine afterwards (a too-large block would have broken a plain connection).
    expect((await sameOnEveryTransport((t, o) => call(t, { text: "after" }, o))).ok).toBe(true);
  });

  test("rich error details (google.rpc.Status) from abort_with_status", async () => {
    const seen = await sameOnEveryTransport((t, o) => call(t, { mode: RespondRequest_Mode.MODE_ABORT_WITH_STATUS, code: Status.RESOURCE_EXHAUSTED, details: "slow down", richDetails: true }, o));
    expect(seen.statusDetails).toEqual([
      { kind: "ErrorInfo", value: { reason: "CONFORMANCE", domain: "procgrpc.test", metadata: { k: "v" } } },
      { kind: "RetryInfo", value: { retryDelay: { seconds: 1, nanos: 500000000 } } },
    ]);
  });

  test("exceptions: a client-error mapping keeps its message; an uncaught one is UNKNOWN", async () => {
    const invalid = await sameOnEveryTransport((t, o) => call(t, { mode: RespondRequest_Mode.MODE_RAISE, exception: "ValueError", details: "bad quantity" }, o));
    expect(invalid).toMatchObject({ code: Status.INVALID_ARGUMENT, details: "bad quantity", category: "worker" });
    const uncaught = await sameOnEveryTransport((t, o) => call(t, { mode: RespondRequest_Mode.MODE_RAISE, exception: "RuntimeError", details: "boom at /srv/secret" }, o), { requestId: "conf-uncaught" });
    // The exception's text stays in the worker's log; the caller gets its class and the request id.
    expect(uncaught).toMatchObject({ code: Status.UNKNOWN, category: "worker", details: "RuntimeError (request id conf-uncaught; details in the worker log)" });
  });
});

describe("requests that cannot be sent fail at the call site, the same on every transport, and cost no capacity", () => {
  test("values the message cannot hold: INTERNAL, protocol, never reached a worker", async () => {
    for (const bad of [{ count: -1 }, { small: 2 ** 40 }]) {
      const seen = await sameOnEveryTransport((t, o) => client(t).respond(bad, o));
      expect(seen).toMatchObject({ ok: false, code: Status.INTERNAL, category: "protocol", reachedWorker: false, retryable: false, headers: [], trailers: [] });
      expect(seen.details).toMatch(/^request message could not be serialized: /);
    }
  });

  test("invalid metadata: a key with a space, a string on a -bin key, a Buffer on a text key, a reserved key", async () => {
    for (const metadata of [{ "bad key": "x" }, { "x-bin": "text" }, { "x-text": Buffer.from("b") }, { "grpc-timeout": "1S" }, { "user-agent": "me" }] as const) {
      const seen = await sameOnEveryTransport((t, o) => client(t).respond({}, o), { metadata: metadata as never });
      expect(seen).toMatchObject({ ok: false, code: Status.INTERNAL, category: "protocol", reachedWorker: false });
      expect(seen.details).toMatch(/^invalid request metadata: /);
    }
  });

  test("metadata over the size limit: RESOURCE_EXHAUSTED, protocol, never reached a worker", async () => {
    const seen = await sameOnEveryTransport((t, o) => client(t).respond({}, o), { metadata: { big: "x".repeat(9000) } });
    expect(seen).toMatchObject({ ok: false, code: Status.RESOURCE_EXHAUSTED, category: "protocol", reachedWorker: false, retryable: false });
  });

  test.each(TRANSPORTS)("%s: more bad calls than a worker's capacity leave every slot free", async (t) => {
    const small = conformancePool(t, { workers: 1, maxInFlightPerWorker: 2 });
    await small.start();
    try {
      const c = small.client(ConformanceServiceDefinition);
      for (let i = 0; i < 10; i++) {
        await rejection(c.respond({ count: -1 }));
        await rejection(c.respond({}, { metadata: { "a b": "c" } }));
      }
      expect(small.health().workers[0].inFlight).toBe(0);
      expect((await c.respond({ text: "still serving" }, { timeoutMs: 10000 })).text).toBe("still serving");
    } finally {
      await small.shutdown();
    }
  });
});

describe("cancellation wins at every instant", () => {
  let keys = 0;
  const key = (): string => `k${process.pid}-${++keys}`;
  const executions = (t: Transport, k: string) => client(t).executions({ key: k });

  test("a signal aborted before the call: CANCELLED, never reached a worker", async () => {
    const ac = new AbortController();
    ac.abort();
    const k = key();
    const seen = await sameOnEveryTransport((t, o) => client(t).record({ key: `${k}-${t}` }, o), { signal: ac.signal });
    expect(seen).toMatchObject({ ok: false, code: Status.CANCELLED, category: "cancelled", reachedWorker: false });
    for (const t of TRANSPORTS) expect((await executions(t, `${k}-${t}`)).executions).toBe(0);
  });

  test.each(TRANSPORTS)("%s: a signal aborted in the same tick as the call, for every call kind: CANCELLED", async (t) => {
    const c = client(t);
    const unaryAc = new AbortController();
    const unary = c.respond({}, { signal: unaryAc.signal });
    unaryAc.abort();
    expect((await rejection(unary)).code()).toBe(Status.CANCELLED);

    const clientAc = new AbortController();
    const clientStream = c.clientStream([{ text: "a" }], { signal: clientAc.signal });
    clientAc.abort();
    expect((await rejection(clientStream)).code()).toBe(Status.CANCELLED);

    const bidiAc = new AbortController();
    const bidi = c.bidiStream([{ text: "a" }], { signal: bidiAc.signal });
    bidiAc.abort();
    expect((await rejection((async () => { for await (const _ of bidi) void _; })())).code()).toBe(Status.CANCELLED);

    const serverAc = new AbortController();
    const server = c.serverStream({ count: 3 }, { signal: serverAc.signal });
    serverAc.abort();
    expect((await rejection((async () => { for await (const _ of server) void _; })())).code()).toBe(Status.CANCELLED);
    expect(pools[t].health().workers.every((w) => w.inFlight === 0)).toBe(true);
  });

  test.each(TRANSPORTS)("%s: a signal aborted while the call waits in the queue: CANCELLED, never reached a worker", async (t) => {
    const small = conformancePool(t, { workers: 1, maxInFlightPerWorker: 1 });
    await small.start();
    try {
      const c = small.client(ConformanceServiceDefinition);
      const blocker = new AbortController();
      const k = key();
      const busy = c.record({ key: k, block: true }, { signal: blocker.signal }).catch((e: unknown) => e);
      const queuedAc = new AbortController();
      const queuedKey = key();
      const queued = c.record({ key: queuedKey }, { signal: queuedAc.signal });
      await new Promise((r) => setImmediate(r));
      expect(small.health().queued).toBe(1);
      queuedAc.abort();
      const err = await rejection(queued);
      expect(err).toMatchObject({ category: "cancelled", reachedWorker: false });
      blocker.abort();
      await busy;
      expect((await c.executions({ key: queuedKey })).executions).toBe(0);
    } finally {
      await small.shutdown();
    }
  });

  test("a signal aborted while the handler runs: CANCELLED, and the servicer sees it", async () => {
    const k = key();
    const seen = await sameOnEveryTransport(async (t, o) => {
      const ac = new AbortController();
      const running = client(t).record({ key: `${k}-${t}`, block: true }, { ...o, signal: ac.signal });
      while ((await executions(t, `${k}-${t}`)).executions === 0) await new Promise((r) => setTimeout(r, 10));
      ac.abort();
      return running;
    });
    expect(seen).toMatchObject({ ok: false, code: Status.CANCELLED, category: "cancelled", reachedWorker: true, headers: [], trailers: [] });
    for (const t of TRANSPORTS) {
      let e = await executions(t, `${k}-${t}`);
      while (e.cancelled === 0) e = await executions(t, `${k}-${t}`);
      expect(e).toEqual({ executions: 1, cancelled: 1 });
    }
  });
});

describe("deadlines", () => {
  let keys = 0;
  const key = (): string => `d${process.pid}-${++keys}`;

  test("timeoutMs 0 and a deadline in the past fail at once with DEADLINE_EXCEEDED, and the handler never runs", async () => {
    for (const options of [{ timeoutMs: 0 }, { deadline: new Date(Date.now() - 1000) }, { deadline: Date.now() - 1 }]) {
      const k = key();
      const seen = await sameOnEveryTransport((t, o) => client(t).record({ key: `${k}-${t}` }, o), options);
      expect(seen).toMatchObject({ ok: false, code: Status.DEADLINE_EXCEEDED, category: "timeout", reachedWorker: false });
      for (const t of TRANSPORTS) expect((await client(t).executions({ key: `${k}-${t}` })).executions).toBe(0);
    }
  });

  test("NaN, negative and infinite timeouts and invalid deadlines are RangeErrors at the call site", async () => {
    for (const t of TRANSPORTS) {
      for (const options of [{ timeoutMs: Number.NaN }, { timeoutMs: -5 }, { timeoutMs: Infinity }, { deadline: new Date("nope") }, { deadline: 5000 }]) {
        await expect(client(t).respond({}, options)).rejects.toBeInstanceOf(RangeError);
        expect(() => client(t).serverStream({}, options)).toThrow(RangeError);
      }
      expect(pools[t].health().workers.every((w) => w.inFlight === 0)).toBe(true);
    }
  });

  test("a deadline passing while the handler runs: the same error on every transport", async () => {
    const seen = await sameOnEveryTransport((t, o) => client(t).record({ key: key(), block: true }, o), { timeoutMs: 150 });
    expect(seen).toMatchObject({ ok: false, code: Status.DEADLINE_EXCEEDED, category: "timeout", timeoutKind: "per-call", reachedWorker: true, details: "Deadline exceeded after 150 ms" });
  });
});

describe("pipelineMaxRequestBytes", () => {
  test("the pipelined pool sends a request up to the limit on the pipe and a larger one as its own HTTP/2 stream (unless it takes the shared-memory lane)", async () => {
    const c = client("pipelined");
    const plainPeer = (await client("unary").respond({ reportPeer: true })).peer;
    expect((await c.respond({ reportPeer: true, text: "x".repeat(1000) })).peer).toBe("unix:pipeline");
    // With PROCGRPC_TEST_LANE=always every request takes the lane, and so the pipe.
    // Over the default limit of either carrier (128 KiB on the socket pair, 64 KiB on the gRPC stream).
    expect((await c.respond({ reportPeer: true, text: "x".repeat(200 * 1024) })).peer).toBe(LANE_OPTIONS.sharedMemoryLane ? "unix:pipeline" : plainPeer);
    // Over the lane's threshold (default 256 KiB) the request goes through the lane, on the pipe.
    expect((await c.respond({ reportPeer: true, text: "x".repeat(600 * 1024) })).peer).toBe("unix:pipeline");
    expect(plainPeer).not.toBe("unix:pipeline");
  });

  test("a request above it answers on the pipelined pool exactly as on the plain one", async () => {
    const text = "y".repeat(200 * 1024);
    const seen = await sameOnEveryTransport((t, o) => client(t).respond({ text, initial: { "x-big": "1" } }, o));
    expect(seen).toMatchObject({ ok: true, headers: [{ "x-big": ["1"] }] });
    const failed = await sameOnEveryTransport((t, o) => client(t).respond({ text, mode: RespondRequest_Mode.MODE_ABORT, code: Status.ABORTED, details: "big" }, o));
    expect(failed).toMatchObject({ code: Status.ABORTED, details: "big" });
  });

  test("requests and responses over the shared-memory lane's threshold answer exactly as on the plain transport", async () => {
    for (const size of [512 * 1024, 3 * 1024 * 1024]) {
      const text = "z".repeat(size);
      const seen = await sameOnEveryTransport((t, o) => client(t).respond({ text, initial: { "x-big": "1" }, trailing: { "x-t": "2" } }, o));
      expect(seen).toMatchObject({ ok: true, headers: [{ "x-big": ["1"] }], trailers: [expect.objectContaining({ "x-t": ["2"] })] });
      expect(((seen.response as { text?: string } | undefined)?.text ?? "").length).toBe(size);
      const failed = await sameOnEveryTransport((t, o) => client(t).respondAsync({ text, mode: RespondRequest_Mode.MODE_SET_CODE, code: Status.RESOURCE_EXHAUSTED, details: "big" }, o));
      expect(failed).toMatchObject({ ok: false, code: Status.RESOURCE_EXHAUSTED, details: "big" });
    }
  });
});

describe("streams", () => {
  test("a worker's status ends a bidirectional call while the request writer waits for flow control: the worker's status, not 'the request stream threw'", async () => {
    await sameOnEveryTransport(async (t, o) => {
      async function* requests(): AsyncGenerator<Partial<RespondRequest>> {
        yield { mode: RespondRequest_Mode.MODE_ABORT, code: Status.INVALID_ARGUMENT, details: "stop sending" };
        for (;;) yield { text: "z".repeat(1024 * 1024) };
      }
      for await (const _ of client(t).bidiStream(requests(), o)) void _;
    }).then((seen) => expect(seen).toMatchObject({ ok: false, code: Status.INVALID_ARGUMENT, details: "stop sending", category: "worker" }));
  });

  test("a request iterable that throws: CANCELLED, 'the request stream threw', the worker sees a cancellation", async () => {
    const seen = await sameOnEveryTransport(async (t, o) => {
      async function* requests(): AsyncGenerator<Partial<RespondRequest>> {
        yield { text: "one" };
        throw new Error("producer failed");
      }
      return client(t).clientStream(requests(), o);
    });
    expect(seen).toMatchObject({ ok: false, code: Status.CANCELLED, category: "cancelled" });
    expect(seen.details).toBe("the request stream threw: producer failed");
  });

  test("server, client and bidirectional calls: the same answers, headers and trailers on every transport", async () => {
    const md = { initial: { "x-i": "1" }, trailing: { "x-t": "2" } };
    const server = await sameOnEveryTransport(async (t, o) => {
      const got: unknown[] = [];
      for await (const m of client(t).serverStream({ count: 3, text: "s", ...md }, o)) got.push(m);
      return got;
    });
    expect(server).toMatchObject({ ok: true, headers: [{ "x-i": ["1"] }], trailers: [{ "x-t": ["2"] }] });
    expect((server.response as unknown[]).length).toBe(4);
    const clientSide = await sameOnEveryTransport((t, o) => client(t).clientStream([{ text: "a" }, { text: "b", ...md }], o));
    expect(clientSide).toMatchObject({ ok: true, response: { text: "b" }, headers: [{ "x-i": ["1"] }], trailers: [{ "x-t": ["2"] }] });
    const failed = await sameOnEveryTransport(async (t, o) => {
      for await (const _ of client(t).serverStream({ count: 2, mode: RespondRequest_Mode.MODE_ABORT, code: Status.DATA_LOSS, details: "lost", ...md }, o)) void _;
    });
    expect(failed).toMatchObject({ ok: false, code: Status.DATA_LOSS, details: "lost", trailing: { "x-t": ["2"] } });
  });
});
