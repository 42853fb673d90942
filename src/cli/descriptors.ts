import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { create, createFileRegistry, fromBinary, fromJson, toBinary, toJson, type DescMethod, type FileRegistry, type JsonValue } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, MethodOptions_IdempotencyLevel, type DescriptorProto, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import type { CallKind, StreamMethod } from "../call/method";
import { checkProtoc, protocPython, runProtoc } from "./protoc";
import type { ReflectionClient } from "./reflection-client";

/**
 * Descriptors for `procgrpc call`: from the worker's server reflection or from a .proto file
 * (compiled by grpcio-tools' protoc), as a @bufbuild/protobuf registry that gives
 * proto3 JSON mapping both ways (lowerCamel or original field names, unknown fields rejected).
 */

/** Builds a registry from serialized FileDescriptorProtos, asking `more` for missing imports. */
export async function registryFromReflection(client: ReflectionClient, service: string): Promise<FileRegistry> {
  const files = new Map<string, FileDescriptorProto>();
  const add = (protos: Uint8Array[]): void => {
    for (const bytes of protos) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      files.set(file.name, file);
    }
  };
  add(await client.filesForSymbol(service));
  for (let round = 0; round < 20; round++) {
    const missing = [...new Set([...files.values()].flatMap((f) => f.dependency))].filter((d) => !files.has(d));
    if (missing.length === 0) break;
    add(await client.filesByName(missing));
  }
  for (const file of files.values()) fillJsonNames(file.messageType);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: [...files.values()] }));
}

/**
 * grpcio serves descriptors as protoc's Python plugin embedded them, without `json_name`;
 * protoc would have set it to the lowerCamel form of the field name, so do the same.
 */
function fillJsonNames(messages: readonly DescriptorProto[]): void {
  for (const message of messages) {
    for (const field of message.field) {
      if (!field.jsonName) field.jsonName = field.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    }
    fillJsonNames(message.nestedType);
  }
}

/**
 * Compiles `protoPath` (imports resolved from `includeDir`, default its directory) with
 * grpcio-tools' protoc, run by `python` (see protoc.ts). Relative paths resolve against the
 * working directory.
 */
export function registryFromProto(protoPath: string, includeDir?: string, python?: string): FileRegistry {
  const file = resolve(protoPath);
  if (!existsSync(file)) throw new Error(`--proto ${protoPath}: no such file ${file}`);
  const root = resolve(includeDir ?? dirname(file));
  const rel = relative(root, file);
  if (rel.startsWith("..")) throw new Error(`--proto ${protoPath} is not under --include ${root}`);
  const interpreter = protocPython(python);
  checkProtoc(interpreter, "procgrpc call --proto");
  const scratch = mkdtempSync(join(tmpdir(), "procgrpc-call-"));
  try {
    const out = join(scratch, "descriptors.binpb");
    try {
      runProtoc(interpreter, [`-I${root}`, "--include_imports", `--descriptor_set_out=${out}`, file], root);
    } catch (e) {
      throw new Error(`compiling ${protoPath} failed: ${(e as Error).message}`);
    }
    return createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(out)));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Splits `package.Service/Method` (a leading `/` and a `.` before the method are accepted too). */
export function parseMethodName(name: string): { service: string; method: string } | undefined {
  const trimmed = name.replace(/^\//, "");
  const m = /^([A-Za-z_][\w.]*)[/.]([A-Za-z_]\w*)$/.exec(trimmed.includes("/") ? trimmed : trimmed.replace(/\.([^.]+)$/, "/$1"));
  return m ? { service: m[1], method: m[2] } : undefined;
}

/** Finds a method in the registry, or throws an Error listing what there is. */
export function findMethod(registry: FileRegistry, service: string, method: string): DescMethod {
  const svc = registry.getService(service);
  if (!svc) {
    const services: string[] = [];
    for (const file of registry.files) for (const s of file.services) services.push(s.typeName);
    throw new Error(`no service ${service}; known: ${services.join(", ") || "(none)"}`);
  }
  const found = svc.methods.find((m) => m.name === method || m.localName === method);
  if (!found) throw new Error(`${service} has no method ${method}; it has: ${svc.methods.map((m) => m.name).join(", ")}`);
  return found;
}

/** The call kind of a method, in procgrpc's terms. */
export function callKindOfDesc(desc: DescMethod): CallKind {
  return KIND_OF[desc.methodKind];
}

const KIND_OF: Record<DescMethod["methodKind"], CallKind> = {
  unary: "unary",
  server_streaming: "server-stream",
  client_streaming: "client-stream",
  bidi_streaming: "bidi-stream",
};

/**
 * A method of any kind whose requests are proto3 JSON and whose responses come back as proto3
 * JSON; `emitDefaults` prints fields that hold their default value too (grpcurl's `-emit-defaults`).
 */
export function jsonMethod(registry: FileRegistry, desc: DescMethod, emitDefaults = false): StreamMethod<unknown, JsonValue> {
  const kind = callKindOfDesc(desc);
  const level = desc.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ? "NO_SIDE_EFFECTS" : desc.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT ? "IDEMPOTENT" : "IDEMPOTENCY_UNKNOWN";
  return {
    path: `/${desc.parent.typeName}/${desc.name}`,
    serialize: (json) => Buffer.from(toBinary(desc.input, fromJson(desc.input, json as JsonValue, { registry }))),
    deserialize: (bytes) => toJson(desc.output, fromBinary(desc.output, bytes), { registry, alwaysEmitImplicit: emitDefaults }),
    idempotent: level !== "IDEMPOTENCY_UNKNOWN",
    idempotencyLevel: level,
    requestStream: kind === "client-stream" || kind === "bidi-stream",
    responseStream: kind === "server-stream" || kind === "bidi-stream",
  };
}

/** Checks the request JSON against the input message now, so a typo is a usage error rather than a failed call. */
export function validateRequest(registry: FileRegistry, desc: DescMethod, json: JsonValue): void {
  fromJson(desc.input, json, { registry });
}
