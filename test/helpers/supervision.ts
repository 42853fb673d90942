import { Client, credentials, type ServiceError } from "@grpc/grpc-js";
import type { WorkerPool, WorkerPoolEvents } from "../../src";
import { runningHandlers, type RunningHandler } from "../../src/transport/worker-introspection";

/** One recorded pool event, in firing order. */
export interface Recorded {
  name: keyof WorkerPoolEvents;
  at: number;
  payload: Record<string, unknown>;
}

const NAMES: (keyof WorkerPoolEvents)[] = [
  "workerState",
  "workerReady",
  "workerExit",
  "workerRestart",
  "workerUnhealthy",
  "workerHealthy",
  "workerHung",
  "workerRecycled",
  "degraded",
  "recovered",
  "callDequeued",
  "queueFull",
  "workerDrained",
  "scale",
  "sparePromoted",
  "scaleFailed",
  "switched",
  "switchedOffCall",
];

/** Records every event `pool` emits, in order. */
export function recordEvents(pool: WorkerPool): Recorded[] {
  const out: Recorded[] = [];
  for (const name of NAMES) {
    pool.on(name, ((payload: Record<string, unknown>) => out.push({ name, at: Date.now(), payload })) as never);
  }
  return out;
}

/** The names of the recorded events matching `filter`, in order (workerState shown as `state:from>to`). */
export function sequence(events: Recorded[], filter: (e: Recorded) => boolean = () => true): string[] {
  return events.filter(filter).map((e) => (e.name === "workerState" ? `state:${String(e.payload.from)}>${String(e.payload.to)}` : e.name));
}

/** Resolves with the first `name` event whose payload passes `match`, or rejects after `timeoutMs`. */
export function nextEvent<K extends keyof WorkerPoolEvents>(pool: WorkerPool, name: K, match: (p: WorkerPoolEvents[K][0]) => boolean = () => true, timeoutMs = 15000): Promise<WorkerPoolEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pool.off(name, listener as never);
      reject(new Error(`no ${String(name)} event within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    const listener = (payload: WorkerPoolEvents[K][0]): void => {
      if (!match(payload)) return;
      clearTimeout(timer);
      pool.off(name, listener as never);
      resolve(payload);
    };
    pool.on(name, listener as never);
  });
}

/** A method of a ts-proto generic definition, as far as `directCall` needs it. */
interface DirectMethod<Req, Res> {
  name: string;
  requestType: { encode(m: Req): { finish(): Uint8Array }; fromPartial(o: object): Req };
  responseType: { decode(b: Uint8Array): Res };
}

/**
 * Calls one worker directly on its socket, past the pool (as grpcurl would): used to talk to a
 * worker the pool no longer routes calls to.
 */
export function directCall<Req, Res>(socket: string, service: { fullName: string }, method: DirectMethod<Req, Res>, request: object): Promise<Res> {
  const client = new Client(`unix:${socket}`, credentials.createInsecure());
  return new Promise<Res>((resolve, reject) => {
    client.makeUnaryRequest(
      `/${service.fullName}/${method.name}`,
      (m: Req) => Buffer.from(method.requestType.encode(m).finish()),
      (b: Buffer) => method.responseType.decode(b),
      method.requestType.fromPartial(request),
      { deadline: new Date(Date.now() + 5000) },
      (err: ServiceError | null, res?: Res) => (err ? reject(err) : resolve(res as Res)),
    );
  }).finally(() => client.close());
}

/**
 * Resolves once the worker on `socket` runs a handler for `requestId` (asked through the worker's
 * own Running service), so a test can act on a call that has really started in Python; the
 * deadline only bounds a failure.
 */
export function handlerStarted(socket: string, requestId: string, timeoutMs = 20_000): Promise<void> {
  return untilHandlers(socket, (running) => running.some((h) => h.requestId === requestId), `a handler for request ${requestId}`, timeoutMs);
}

/** Resolves once the worker on `socket` runs no servicer handler at all. */
export function handlersIdle(socket: string, timeoutMs = 20_000): Promise<void> {
  return untilHandlers(socket, (running) => running.length === 0, "no handler running", timeoutMs);
}

async function untilHandlers(socket: string, done: (running: RunningHandler[]) => boolean, what: string, timeoutMs: number): Promise<void> {
  const client = new Client(`unix:${socket}`, credentials.createInsecure());
  try {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const running = await runningHandlers(client, new Date(Date.now() + 5000)).catch(() => undefined);
      if (running && done(running)) return;
      if (Date.now() > until) throw new Error(`${what}: not seen within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    client.close();
  }
}
