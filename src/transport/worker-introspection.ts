import type { Client, ServiceError } from "@grpc/grpc-js";
import { loadOnUse } from "../core/load-on-use";

// Loaded when the watchdog first asks a worker (a hung handler is rare): not at import time.
const protobuf = loadOnUse<typeof import("@bufbuild/protobuf")>("@bufbuild/protobuf");
const wkt = loadOnUse<typeof import("@bufbuild/protobuf/wkt")>("@bufbuild/protobuf/wkt");

/** A servicer handler still executing in a worker, as the worker reports it. */
export interface RunningHandler {
  /** The pool's id of the call's attempt (`procgrpc-call-id`), "" when the call carried none. */
  callId: string;
  requestId: string;
  method: string;
  /** Seconds since the handler started. */
  seconds: number;
}

const RUNNING_PATH = "/procgrpc.internal.v1.Worker/Running";

/**
 * Asks a worker which servicer handlers are still executing (procgrpc.internal.v1.Worker/Running,
 * served by python-worker: `google.protobuf.Empty` → `google.protobuf.Struct`). A `def` handler
 * that ignores cancellation stays listed after grpc-js has ended its call on the Node side.
 */
export function runningHandlers(client: Client, deadline: Date): Promise<RunningHandler[]> {
  const { create, fromBinary, toBinary, toJson } = protobuf();
  const { EmptySchema, StructSchema } = wkt();
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      RUNNING_PATH,
      () => Buffer.from(toBinary(EmptySchema, create(EmptySchema))),
      (bytes: Buffer) => fromBinary(StructSchema, bytes),
      {},
      { deadline },
      (err: ServiceError | null, res) => {
        if (err || !res) {
          reject(err ?? new Error("empty Running response"));
          return;
        }
        const json = toJson(StructSchema, res) as { running?: RunningHandler[] };
        resolve(Array.isArray(json.running) ? json.running : []);
      },
    );
  });
}
