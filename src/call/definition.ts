/**
 * The shape of the service definitions ts-proto emits with `outputServices=generic-definitions`
 * (what `procgrpc codegen` produces). Clients derive every request and response type from it.
 */

/** A generated message type: encodes, decodes and builds messages from partial objects. */
export interface MessageType<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
  fromPartial(object: never): T;
}

/** One method of a generated service definition. */
export interface MethodDefinition<Req = unknown, Res = unknown, ReqStream extends boolean = boolean, ResStream extends boolean = boolean> {
  readonly name: string;
  readonly requestType: MessageType<Req>;
  readonly requestStream: ReqStream;
  readonly responseType: MessageType<Res>;
  readonly responseStream: ResStream;
  readonly options: { readonly idempotencyLevel?: "IDEMPOTENCY_UNKNOWN" | "NO_SIDE_EFFECTS" | "IDEMPOTENT" | string };
}

/** A generated service definition, e.g. `DemoServiceDefinition`. */
export interface ServiceDefinition {
  readonly name: string;
  readonly fullName: string;
  readonly methods: { readonly [key: string]: MethodDefinition };
}

/** The request a method accepts: the message type's `fromPartial` input (every field optional). */
export type RequestOf<M> = M extends { requestType: { fromPartial(object: infer P): unknown } } ? P : never;

/** The response message a method resolves with. */
export type ResponseOf<M> = M extends { responseType: MessageType<infer R> } ? R : never;

/** The keys of a definition's unary methods. */
export type UnaryMethodKeys<D extends ServiceDefinition> = {
  [K in keyof D["methods"]]: D["methods"][K]["requestStream"] extends false
    ? D["methods"][K]["responseStream"] extends false
      ? K
      : never
    : never;
}[keyof D["methods"]];

/** True when the proto marks the method `IDEMPOTENT` or `NO_SIDE_EFFECTS`. */
export function isIdempotentMethod(method: MethodDefinition): boolean {
  const level = method.options?.idempotencyLevel;
  return level === "IDEMPOTENT" || level === "NO_SIDE_EFFECTS";
}
