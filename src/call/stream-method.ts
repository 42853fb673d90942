import type { MethodDefinition } from "./definition";
import { unaryMethodOf, type UnaryMethod } from "./unary-method";

/** Everything the pool needs to run one streaming method: a method description plus its streaming kind. */
export interface StreamMethod<Req, Res> extends UnaryMethod<Req, Res> {
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** Builds the runtime description of a generated streaming method; requests may be partial. */
export function streamMethodOf<Res>(serviceFullName: string, method: MethodDefinition<unknown, Res>): StreamMethod<unknown, Res> {
  return { ...unaryMethodOf(serviceFullName, method), requestStream: method.requestStream, responseStream: method.responseStream };
}
