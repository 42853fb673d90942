import { ChildProcess } from "node:child_process";
import { connect } from "node:http2";
import { createRequire } from "node:module";
import { Duplex } from "node:stream";
import { queryObjects } from "node:v8";
import { HealthMonitor } from "../../src/pool/health-monitor";
import { WorkerProcess } from "../../src/pool/worker-process";
import { Pipeline } from "../../src/transport/pipeline";

type Constructor = abstract new (...args: never[]) => unknown;

/** node:http2 does not export ClientHttp2Session: take it from a session over a dead stream. */
function http2SessionClass(): Constructor {
  const session = connect("http://localhost", { createConnection: () => new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() }) });
  session.on("error", () => undefined);
  const ctor = (Object.getPrototypeOf(session) as { constructor: Constructor }).constructor;
  session.destroy();
  return ctor;
}

/** The counted classes (grpc-js internals by their module; one grpc-js moved is left out). */
function countedClasses(): Record<string, Constructor> {
  const grpc = createRequire(require.resolve("@grpc/grpc-js"));
  const internal = (module: string, name: string): Constructor | undefined => {
    try {
      return (grpc(`./${module}`) as Record<string, Constructor | undefined>)[name];
    } catch {
      return undefined;
    }
  };
  const classes: Record<string, Constructor | undefined> = {
    WorkerProcess,
    Pipeline,
    HealthMonitor,
    ChildProcess,
    grpcClient: internal("client", "Client"),
    grpcChannel: internal("internal-channel", "InternalChannel"),
    grpcSubchannel: internal("subchannel", "Subchannel"),
    http2ClientSession: http2SessionClass(),
  };
  return Object.fromEntries(Object.entries(classes).filter((e): e is [string, Constructor] => e[1] !== undefined));
}

let classes: Record<string, Constructor> | undefined;

/**
 * Live instances, after a full GC, of the objects that exist once per worker process and must
 * be released with it: our WorkerProcess, Pipeline and HealthMonitor, grpc-js clients, channels
 * and subchannels, node:http2 client sessions and child processes (v8.queryObjects: a full GC
 * per class). It counts objects of the main context only, so it works in a plain Node process
 * (test/fixtures/restart-release.ts, bench/soak.ts), not inside a jest test's vm context.
 */
export function liveObjectCounts(): Record<string, number> {
  classes ??= countedClasses();
  return Object.fromEntries(Object.entries(classes).map(([name, ctor]) => [name, queryObjects(ctor, { format: "count" }) as number]));
}
