import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import type { FileRegistry, JsonValue } from "@bufbuild/protobuf";
import { isRpcError, type RpcError } from "../core/rpc-error";
import { statusName } from "../core/status";
import { jsonLogger } from "../core/logger";
import { WorkerPool } from "../pool/worker-pool";
import { RemotePool } from "../remote/remote-pool";
import { findMethod, jsonUnaryMethod, parseMethodName, registryFromProto, registryFromReflection, validateRequest } from "./descriptors";
import { hasPoolFlags, POOL_FLAGS, POOL_FLAGS_USAGE, poolOptionsFromFlags } from "./pool-flags";
import { ReflectionClient } from "./reflection-client";
import { intFlag, usageError } from "./usage-error";

/** `procgrpc call --help`. */
export const CALL_USAGE = `Usage: procgrpc call <package.Service/Method> [--data '<json>'] [--proto <file> [--include <dir>]]
                     (--socket <path> | --script <file> | --module <name>) [options]

Makes one unary call and prints the response as JSON (proto3 JSON mapping). Without --proto the
method's types come from the worker's server reflection. On a failed call it prints the status
code, details, procgrpc's category, the decoded google.rpc details and the trailers, and exits 1.

  --data <json>         The request message as JSON (default {})
  --proto <file>        Take the types from this .proto file instead of reflection (compiled by the
                        protoc of grpcio-tools, procgrpc[codegen], in --python, $PROCGRPC_PYTHON or python3)
  --include <dir>       Import root for --proto (default: the file's directory)
  --socket <path>       Call a running worker's socket (e.g. one printed by procgrpc serve)
${POOL_FLAGS_USAGE}
                        (or, instead of --socket: start a pool for this one call)
  --timeout <ms>        Deadline (default 30000)
  --metadata <k=v>      Request metadata (repeatable)
  --request-id <id>     x-request-id to send (default: a new UUID)
  --json                One JSON object on stdout: {"ok":true,"response":…} or {"ok":false,"error":…}
  -h, --help            This text

Exit codes: 0 ok, 1 the call failed (or could not be made), 2 bad usage.
`;

type Out = (s: string) => void;

/** Runs `procgrpc call`; resolves with the exit code. */
export async function callCommand(args: readonly string[], out: Out, err: Out): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        data: { type: "string" },
        proto: { type: "string" },
        include: { type: "string" },
        socket: { type: "string" },
        timeout: { type: "string" },
        metadata: { type: "string", multiple: true },
        "request-id": { type: "string" },
        json: { type: "boolean" },
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
  let request: JsonValue;
  try {
    request = JSON.parse(values.data ?? "{}") as JsonValue;
  } catch (e) {
    throw usageError(`--data is not valid JSON: ${(e as Error).message}`, CALL_USAGE);
  }
  const timeoutMs = intFlag("timeout", values.timeout, CALL_USAGE) ?? 30000;
  const metadata: Record<string, string> = {};
  for (const kv of values.metadata ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw usageError(`--metadata expects key=value, got '${kv}'`, CALL_USAGE);
    metadata[kv.slice(0, eq).toLowerCase()] = kv.slice(eq + 1);
  }
  const requestId = values["request-id"] ?? randomUUID();
  const poolOptions = values.socket ? undefined : poolOptionsFromFlags(values, CALL_USAGE);

  // A socket is called through a one-target RemotePool: the same call path, errors and deadlines as a pool.
  const pool = poolOptions
    ? new WorkerPool({ ...poolOptions, logger: jsonLogger("error") })
    : new RemotePool({ targets: [`unix:${values.socket as string}`], checkOnStart: false, healthCheckIntervalMs: 0, logger: jsonLogger("error") });
  try {
    await pool.start();
    const socket = values.socket ?? (pool as WorkerPool).health().workers[0].socket;
    const registry = await loadRegistry(values.proto, values.include, values.python, socket, name.service);
    let desc;
    try {
      desc = findMethod(registry, name.service, name.method);
      validateRequest(registry, desc, request);
    } catch (e) {
      throw usageError((e as Error).message, CALL_USAGE);
    }
    const method = jsonUnaryMethod(registry, desc);
    const options = { timeoutMs, metadata, requestId };
    try {
      const response = await pool.unary(method, request, options);
      out(values.json ? `${JSON.stringify({ ok: true, method: method.path, requestId, response })}\n` : `${JSON.stringify(response, null, 2)}\n`);
      return 0;
    } catch (e) {
      if (!isRpcError(e)) throw e;
      if (values.json) out(`${JSON.stringify({ ok: false, method: method.path, error: errorJson(e) }, jsonReplacer)}\n`);
      else err(formatError(e));
      return 1;
    }
  } finally {
    await pool.shutdown();
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
