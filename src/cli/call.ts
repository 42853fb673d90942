import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { parseArgs } from "node:util";
import type { FileRegistry, JsonValue } from "@bufbuild/protobuf";
import type { CallKind } from "../call/method";
import { isRpcError, type RpcError } from "../core/rpc-error";
import { MAX_TIMER_MS } from "../core/deadline";
import { statusName } from "../core/status";
import { jsonLogger } from "../core/logger";
import { WorkerPool } from "../pool/worker-pool";
import { RemotePool } from "../remote/remote-pool";
import { callKindOfDesc, findMethod, jsonMethod, parseMethodName, registryFromProto, registryFromReflection, validateRequest } from "./descriptors";
import { hasPoolFlags, POOL_FLAGS, POOL_FLAGS_USAGE, poolOptionsFromFlags } from "./pool-flags";
import { ReflectionClient } from "./reflection-client";
import { RequestInputError, requestLines, requestSourceSpec, singleRequest, type RequestLines } from "./request-input";
import { intFlag, usageError } from "./usage-error";

/** `procgrpc call --help`. */
export const CALL_USAGE = `Usage: procgrpc call <package.Service/Method> [--data '<json>' | --data @ | --data-file <file>]
                     [--proto <file> [--include <dir>]] (--socket <path> | --script <file> | --module <name>) [options]

Calls one method of any kind and prints the responses as JSON (proto3 JSON mapping), like grpcurl.
Without --proto the method's types come from the worker's server reflection.

  unary, client streaming    the response, pretty-printed
  server streaming, bidi     each response as it arrives, one JSON object a line
  unary, server streaming    one request: --data (default {}), or all of --data-file / stdin
  client streaming, bidi     NDJSON requests, one message a line, sent as the lines arrive: from
                             stdin (the default) or --data-file; --data sends just one

Ctrl-C cancels the call (the worker sees the cancellation). On a failed call (mid-stream too,
after the responses before it) it prints the status code, details, procgrpc's category, the
decoded google.rpc details and the trailers, and exits 1.

  --data <json>       The request message as JSON; '@' reads the request(s) from stdin
  --data-file <file>  Read the request(s) from a file ('-': stdin)
  --proto <file>      Take the types from this .proto file instead of reflection (compiled by the
                      protoc of grpcio-tools, procgrpc[codegen], in --python, $PROCGRPC_PYTHON or python3)
  --include <dir>     Import root for --proto (default: the file's directory)
  --socket <path>     Call a running worker's socket (e.g. one printed by procgrpc serve)
${POOL_FLAGS_USAGE}
                      (or, instead of --socket: start a pool for this one call)
  --timeout <ms>      Deadline (default 30000 for unary calls; streams have none)
  --metadata <k=v>    Request metadata (repeatable)
  --request-id <id>   x-request-id to send (default: a new UUID)
  --emit-defaults     Print fields that hold their default value too (0, "", false, [])
  --json              JSON envelopes on stdout: {"ok":true,"method":…,"requestId":…,"response":…}
                      (streamed responses: one a line, with "index"), or {"ok":false,…,"error":…}
  -h, --help          This text

Exit codes: 0 ok, 1 the call failed (or could not be made), 2 bad usage or a bad request message,
130 cancelled with Ctrl-C.
`;

/** Writes to stdout or stderr; `false` (as from `process.stdout.write`) means "wait for drain". */
type Out = (s: string) => unknown;

/** The exit code of a call cancelled by Ctrl-C (128 + SIGINT, as shells report it). */
const INTERRUPTED = 130;

/** Runs `procgrpc call`; resolves with the exit code. `stdin` is where request messages are read from. */
export async function callCommand(args: readonly string[], out: Out, err: Out, stdin: Readable = process.stdin): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        data: { type: "string" },
        "data-file": { type: "string" },
        proto: { type: "string" },
        include: { type: "string" },
        socket: { type: "string" },
        timeout: { type: "string" },
        metadata: { type: "string", multiple: true },
        "request-id": { type: "string" },
        json: { type: "boolean" },
        "emit-defaults": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        ...POOL_FLAGS,
      },
    });
  } catch (e) {
    throw usageError((e as Error).message, CALL_USAGE);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out(CALL_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw usageError(positionals.length ? `one method expected, got: ${positionals.join(" ")}` : "the method to call is required, e.g. demo.v1.DemoService/Echo", CALL_USAGE);
  const name = parseMethodName(positionals[0]);
  if (!name) throw usageError(`'${positionals[0]}' is not a method name like package.Service/Method`, CALL_USAGE);
  if (values.socket && hasPoolFlags(values)) throw usageError("give --socket or pool options (--script/--module …), not both", CALL_USAGE);
  if (!values.socket && !hasPoolFlags(values)) throw usageError("say where to call: --socket <path>, or --script/--module to start a pool", CALL_USAGE);
  if (values.include && !values.proto) throw usageError("--include needs --proto", CALL_USAGE);
  const source = requestSourceSpec(values.data, values["data-file"], CALL_USAGE);
  const timeoutMs = intFlag("timeout", values.timeout, CALL_USAGE);
  const metadata: Record<string, string> = {};
  for (const kv of values.metadata ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw usageError(`--metadata expects key=value, got '${kv}'`, CALL_USAGE);
    metadata[kv.slice(0, eq).toLowerCase()] = kv.slice(eq + 1);
  }
  const requestId = values["request-id"] ?? randomUUID();
  const poolOptions = values.socket ? undefined : poolOptionsFromFlags(values, CALL_USAGE);

  // Ctrl-C cancels the call (a second one ends the process the default way).
  let lines: RequestLines | undefined;
  const interrupt = new AbortController();
  const onInterrupt = (): void => {
    interrupt.abort(new Error("interrupted (SIGINT)"));
    lines?.close();
    if (source.from === "stdin") stdin.destroy(); // a single request still being read
  };
  process.once("SIGINT", onInterrupt);

  // A socket is called through a one-target RemotePool: the same call path, errors and deadlines as a pool.
  // The call sets its own deadline when it has one; streams without --timeout have none.
  const common = { logger: jsonLogger("error"), requestTimeoutMs: MAX_TIMER_MS };
  const pool = poolOptions
    ? new WorkerPool({ ...poolOptions, ...common })
    : new RemotePool({ targets: [`unix:${values.socket as string}`], checkOnStart: false, healthCheckIntervalMs: 0, ...common });
  try {
    await pool.start();
    const socket = values.socket ?? (pool as WorkerPool).health().workers[0].socket;
    const registry = await loadRegistry(values.proto, values.include, values.python, socket, name.service);
    let desc;
    try {
      desc = findMethod(registry, name.service, name.method);
    } catch (e) {
      throw usageError((e as Error).message, CALL_USAGE);
    }
    const kind = callKindOfDesc(desc);
    const method = jsonMethod(registry, desc, values["emit-defaults"] === true);
    const check = (json: JsonValue): void => validateRequest(registry, desc, json);
    let request: unknown;
    try {
      if (kind === "unary" || kind === "server-stream") request = await singleRequest(source, stdin, check);
      else request = (lines = requestLines(source, stdin, check)).requests;
    } catch (e) {
      if (interrupt.signal.aborted) {
        err("procgrpc call: interrupted before the request was read\n");
        return INTERRUPTED;
      }
      if (e instanceof RequestInputError) throw usageError(e.message, CALL_USAGE);
      throw e;
    }
    if (lines && source.from === "none" && (stdin as { isTTY?: boolean }).isTTY) err("reading request messages from stdin, one JSON object a line; Ctrl-D ends them\n");
    const options = { timeoutMs: timeoutMs ?? (kind === "unary" ? 30_000 : undefined), metadata, requestId, signal: interrupt.signal };
    const printer = new ResponsePrinter(out, values.json === true, method.path, requestId, kind);
    try {
      const result = pool.callMethod(method, request, options);
      if (kind === "unary" || kind === "client-stream") await printer.print(await (result as Promise<JsonValue>));
      else for await (const response of result as AsyncIterable<JsonValue>) await printer.print(response);
      return 0;
    } catch (e) {
      if (!isRpcError(e)) throw e;
      if (e.cause instanceof RequestInputError) throw e.cause;
      if (values.json) await printer.line(JSON.stringify({ ok: false, method: method.path, error: errorJson(e) }, jsonReplacer));
      else err(formatError(e));
      return interrupt.signal.aborted ? INTERRUPTED : 1;
    }
  } finally {
    process.off("SIGINT", onInterrupt);
    lines?.close();
    await pool.shutdown();
  }
}

/** Prints responses as the call kind and --json ask, waiting for stdout to drain when it is full. */
class ResponsePrinter {
  private index = 0;

  constructor(
    private readonly out: Out,
    private readonly json: boolean,
    private readonly method: string,
    private readonly requestId: string,
    private readonly kind: CallKind,
  ) {}

  async print(response: JsonValue): Promise<void> {
    const streamed = this.kind === "server-stream" || this.kind === "bidi-stream";
    if (this.json) {
      await this.line(JSON.stringify({ ok: true, method: this.method, requestId: this.requestId, ...(streamed ? { index: this.index++ } : {}), response }));
    } else {
      await this.line(streamed ? JSON.stringify(response) : JSON.stringify(response, null, 2));
    }
  }

  async line(text: string): Promise<void> {
    if (this.out(`${text}\n`) === false) await new Promise((resolve) => process.stdout.once("drain", resolve));
  }
}

async function loadRegistry(proto: string | undefined, include: string | undefined, python: string | undefined, socket: string, service: string): Promise<FileRegistry> {
  if (proto) return registryFromProto(proto, include, python);
  const reflection = new ReflectionClient(socket);
  try {
    return await registryFromReflection(reflection, service);
  } catch (e) {
    const services = await reflection.listServices().catch(() => [] as string[]);
    const hint = services.length && !services.includes(service) ? ` The worker serves: ${services.join(", ")}.` : "";
    throw Object.assign(new Error(`cannot resolve ${service} by server reflection on ${socket}: ${(e as Error).message}.${hint}`), { exitCode: services.length ? 2 : 1 });
  } finally {
    reflection.close();
  }
}

function trailersOf(e: RpcError): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(e.trailingMetadata().toJSON())) out[k] = (v as (string | Buffer)[]).map((x) => (typeof x === "string" ? x : Buffer.from(x).toString("base64")));
  return out;
}

function errorJson(e: RpcError): Record<string, unknown> {
  return {
    code: e.code(),
    codeName: statusName(e.code()),
    details: e.details(),
    category: e.category,
    retryable: e.retryable,
    requestId: e.requestId,
    workerId: e.workerId,
    statusDetails: e.statusDetails.map((d) => ({ kind: d.kind, typeUrl: d.typeUrl, value: d.value })),
    trailers: trailersOf(e),
  };
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (value && typeof value === "object" && (value as { type?: string }).type === "Buffer" && Array.isArray((value as { data?: unknown }).data)) {
    return Buffer.from((value as { data: number[] }).data).toString("base64");
  }
  return value;
}

/** The human-readable error report of `procgrpc call`. */
export function formatError(e: RpcError): string {
  const lines = [`ERROR ${statusName(e.code())} (${e.code()}): ${e.details()}`];
  lines.push(`  category:   ${e.category}${e.timeoutKind ? ` (${e.timeoutKind})` : ""}, retryable: ${e.retryable}`);
  if (e.requestId) lines.push(`  request id: ${e.requestId}`);
  if (e.workerId) lines.push(`  worker:     ${e.workerId}`);
  if (e.statusDetails.length) {
    lines.push("  details:");
    for (const d of e.statusDetails) lines.push(`    ${d.kind} ${JSON.stringify(d.value, jsonReplacer)}`);
  }
  const trailers = Object.entries(trailersOf(e));
  if (trailers.length) {
    lines.push("  trailers:");
    for (const [k, vs] of trailers) for (const v of vs) lines.push(`    ${k}: ${v}`);
  }
  return `${lines.join("\n")}\n`;
}
