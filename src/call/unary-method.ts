import type { MethodDefinition } from "./definition";
import { isIdempotentMethod } from "./definition";

/** Everything the pool needs to run one unary method: its path and (de)serialisers. */
export interface UnaryMethod<Req, Res> {
  /** Full gRPC path, `/package.Service/Method`. */
  readonly path: string;
  readonly serialize: (request: Req) => Buffer;
  readonly deserialize: (bytes: Buffer) => Res;
  /** Marked IDEMPOTENT or NO_SIDE_EFFECTS in the proto. */
  readonly idempotent: boolean;
  /** The proto's `idempotency_level`, when known (hedging needs NO_SIDE_EFFECTS). */
  readonly idempotencyLevel?: "NO_SIDE_EFFECTS" | "IDEMPOTENT" | "IDEMPOTENCY_UNKNOWN";
}

/** Builds the runtime description of a generated unary method; the request may be partial. */
export function unaryMethodOf<Req, Res>(serviceFullName: string, method: MethodDefinition<Req, Res>): UnaryMethod<unknown, Res> {
  const { requestType, responseType } = method;
  return {
    path: `/${serviceFullName}/${method.name}`,
    serialize: (request) => {
      const message = requestType.fromPartial(request as never);
      const bytes = requestType.encode(message).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    deserialize: (bytes) => responseType.decode(bytes),
    idempotent: isIdempotentMethod(method),
    idempotencyLevel: levelOf(method.options?.idempotencyLevel),
  };
}

function levelOf(level: string | undefined): UnaryMethod<unknown, unknown>["idempotencyLevel"] {
  return level === "NO_SIDE_EFFECTS" || level === "IDEMPOTENT" ? level : "IDEMPOTENCY_UNKNOWN";
}
