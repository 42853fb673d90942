import type { MethodDefinition } from "./definition";
import { isIdempotentMethod } from "./definition";

/** Everything the pool needs to run one streaming method. */
export interface StreamMethod<Req, Res> {
  /** Full gRPC path, `/package.Service/Method`. */
  readonly path: string;
  readonly serialize: (request: Req) => Buffer;
  readonly deserialize: (bytes: Buffer) => Res;
  readonly idempotent: boolean;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** Builds the runtime description of a generated streaming method; requests may be partial. */
export function streamMethodOf<Res>(serviceFullName: string, method: MethodDefinition<unknown, Res>): StreamMethod<unknown, Res> {
  const { requestType, responseType } = method;
  return {
    path: `/${serviceFullName}/${method.name}`,
    serialize: (request) => {
      const bytes = requestType.encode(requestType.fromPartial(request as never)).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    deserialize: (bytes) => responseType.decode(bytes),
    idempotent: isIdempotentMethod(method),
    requestStream: method.requestStream,
    responseStream: method.responseStream,
  };
}
