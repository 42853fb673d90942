import type { UnaryMethod } from "./method";

/**
 * A pass-through `UnaryMethod`: the request is already-encoded protobuf bytes and the response
 * stays bytes. Replay uses it to re-send a dead letter exactly as it was first sent, without the
 * generated types.
 */
export function rawUnaryMethod(path: string, idempotent = false): UnaryMethod<unknown, Buffer> {
  if (!/^\/[^/]+\/[^/]+$/.test(path)) throw new TypeError(`rawUnaryMethod: '${path}' is not a gRPC method path like /pkg.Service/Method`);
  return {
    path,
    serialize: (bytes) => {
      if (!Buffer.isBuffer(bytes)) throw new TypeError(`rawUnaryMethod(${path}): the request must be a Buffer of encoded protobuf`);
      return bytes;
    },
    deserialize: (bytes) => bytes,
    idempotent,
  };
}
