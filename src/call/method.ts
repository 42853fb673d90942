import type { MethodDefinition } from "./definition";
import { isIdempotentMethod } from "./definition";
import { encodeMessage } from "./message-encoder";
import { encodeMessageParts, holdsLargeBytes } from "./message-parts";

/** The four kinds of gRPC call, by whether requests and responses stream. */
export type CallKind = "unary" | "server-stream" | "client-stream" | "bidi-stream";

/** Everything a transport needs to run one unary method: its path and (de)serialisers. */
export interface UnaryMethod<Req, Res> {
  /** Full gRPC path, `/package.Service/Method`. */
  readonly path: string;
  /** Encodes a request; may throw for a value the message type cannot hold (the call then fails before admission). */
  readonly serialize: (request: Req) => Buffer;
  /**
   * Encodes a request that holds a `bytes` value of at least `minBytes` as parts whose large
   * values are the request's own memory (src/call/message-parts.ts), for a transport that writes
   * them out at once; undefined: use `serialize`. May throw as `serialize` does.
   */
  readonly serializeParts?: (request: Req, minBytes: number) => Uint8Array[] | undefined;
  readonly deserialize: (bytes: Buffer) => Res;
  /** Marked IDEMPOTENT or NO_SIDE_EFFECTS in the proto. */
  readonly idempotent: boolean;
  /** The proto's `idempotency_level`, when known (hedging needs NO_SIDE_EFFECTS). */
  readonly idempotencyLevel?: "NO_SIDE_EFFECTS" | "IDEMPOTENT" | "IDEMPOTENCY_UNKNOWN";
}

/** A method of any kind: a `UnaryMethod` plus whether its requests and responses stream. */
export interface StreamMethod<Req, Res> extends UnaryMethod<Req, Res> {
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** A method descriptor of any kind; a plain `UnaryMethod` (no stream flags) is unary. */
export type AnyMethod = UnaryMethod<unknown, unknown> | StreamMethod<unknown, unknown>;

/** The kind of call a method makes. */
export function callKindOf(method: AnyMethod): CallKind {
  const m = method as Partial<StreamMethod<unknown, unknown>>;
  if (m.requestStream) return m.responseStream ? "bidi-stream" : "client-stream";
  return m.responseStream ? "server-stream" : "unary";
}

/** Builds the runtime description of a generated method of any kind; requests may be partial. */
export function methodOf<Req, Res>(serviceFullName: string, method: MethodDefinition<Req, Res>): StreamMethod<unknown, Res> {
  const { requestType, responseType } = method;
  const level = method.options?.idempotencyLevel;
  return {
    path: `/${serviceFullName}/${method.name}`,
    serialize: (request) => {
      return encodeMessage(requestType, requestType.fromPartial(request as never));
    },
    // Checked on the request as given first: most requests are small, and need no second message built.
    serializeParts: (request, minBytes) => (holdsLargeBytes(request, minBytes) ? encodeMessageParts(requestType, requestType.fromPartial(request as never), minBytes) : undefined),
    deserialize: (bytes) => responseType.decode(bytes),
    idempotent: isIdempotentMethod(method),
    idempotencyLevel: level === "NO_SIDE_EFFECTS" || level === "IDEMPOTENT" ? level : "IDEMPOTENCY_UNKNOWN",
    requestStream: method.requestStream,
    responseStream: method.responseStream,
  };
}

/** `methodOf` for a unary method (kept for callers that build unary descriptors by hand). */
export const unaryMethodOf: <Req, Res>(serviceFullName: string, method: MethodDefinition<Req, Res>) => UnaryMethod<unknown, Res> = methodOf;

/** `methodOf` for a streaming method. */
export const streamMethodOf: <Req, Res>(serviceFullName: string, method: MethodDefinition<Req, Res>) => StreamMethod<unknown, Res> = methodOf;
