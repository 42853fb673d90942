import { randomBytes } from "node:crypto";
import type { Client, ServiceError } from "@grpc/grpc-js";
import { loadOnUse } from "../core/load-on-use";
import type { Logger } from "../core/logger";

// Loaded on the first push (most pools never switch anything off): not at import time.
const grpc = loadOnUse<typeof import("@grpc/grpc-js")>("@grpc/grpc-js");
const protobuf = loadOnUse<typeof import("@bufbuild/protobuf")>("@bufbuild/protobuf");
const wkt = loadOnUse<typeof import("@bufbuild/protobuf/wkt")>("@bufbuild/protobuf/wkt");

const SET_PATH = "/procgrpc.internal.v1.KillSwitch/Set";
/** The metadata key of the pool's secret on `KillSwitch/Set` (python-worker `_services.kill_switch`). */
export const CONTROL_TOKEN_KEY = "procgrpc-control-token";
/** How long one push may take. */
const PUSH_TIMEOUT_MS = 5000;
/** How long a change keeps being pushed to a live worker that does not take it, before the pool gives up (loudly). */
const GIVE_UP_AFTER_MS = 60_000;
const MAX_BACKOFF_MS = 1000;

/** A set of switched-off targets and the pool's generation of it (it grows with every change). */
export interface SwitchedOffSet {
  targets: string[];
  generation: number;
}

/** What the sync needs of a worker process. */
export interface SwitchableWorker {
  readonly id: string;
  readonly channel: Client | undefined;
  /** Set once the process has exited. */
  readonly exit: unknown;
}

/**
 * Puts `set` in force in one worker (`procgrpc.internal.v1.KillSwitch/Set`, `google.protobuf.Struct`
 * both ways, the pool's `token` in `procgrpc-control-token`); resolves with the set in force there
 * (a newer generation when this push was overtaken).
 */
export function setWorkerSwitches(client: Client, token: string, set: SwitchedOffSet, deadline: Date): Promise<SwitchedOffSet> {
  const { create, fromBinary, toBinary, toJson, fromJson } = protobuf();
  const { StructSchema } = wkt();
  const metadata = new (grpc().Metadata)();
  metadata.set(CONTROL_TOKEN_KEY, token);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      SET_PATH,
      () => Buffer.from(toBinary(StructSchema, fromJson(StructSchema, { targets: set.targets, generation: set.generation }))),
      (bytes: Buffer) => fromBinary(StructSchema, bytes),
      create(StructSchema),
      metadata,
      { deadline },
      (err: ServiceError | null, res) => {
        if (err || !res) {
          reject(err ?? new Error("empty KillSwitch/Set response"));
          return;
        }
        const json = toJson(StructSchema, res) as { targets?: unknown; generation?: unknown };
        resolve({ targets: Array.isArray(json.targets) ? (json.targets as string[]) : [], generation: Number(json.generation ?? -1) });
      },
    );
  });
}

/**
 * The kill switches as the workers enforce them, for clients that call a worker's socket
 * directly (`procgrpc serve` publishes them) and never pass through the pool's own check.
 *
 * A worker gets the set in force when it is spawned (`spawnEnvironment`: in force before its
 * server takes a call), and again before the pool routes calls to it when the set changed while
 * it started (`prepare`); every change is pushed to every live worker (`sync`). Only this pool
 * knows the token the workers require for a change.
 */
export class WorkerKillSwitches {
  private readonly token = randomBytes(32).toString("base64url");
  private readonly targets = new Set<string>();
  private generation = 0;
  /** Workers that have started (SERVING): a change is pushed to each. */
  private readonly started = new Set<SwitchableWorker>();
  /** The newest generation each worker has in force (at spawn: what its environment carried). */
  private readonly applied = new WeakMap<SwitchableWorker, number>();
  private closed = false;

  constructor(
    private readonly logger: Logger,
    /** How a set is sent to one worker (a test gives a fake). */
    private readonly send: typeof setWorkerSwitches = setWorkerSwitches,
  ) {}

  /** True when `target` is switched off for the workers. */
  has(target: string): boolean {
    return this.targets.has(target);
  }

  /** Switches `target` off for the workers (push it with `sync`); false when it already was. */
  add(target: string): boolean {
    if (this.targets.has(target)) return false;
    this.targets.add(target);
    this.generation++;
    return true;
  }

  /** Switches `target` back on for the workers (push it with `sync`); false when it was not off. */
  remove(target: string): boolean {
    if (!this.targets.delete(target)) return false;
    this.generation++;
    return true;
  }

  private current(): SwitchedOffSet {
    return { targets: [...this.targets].sort(), generation: this.generation };
  }

  /** The variables of a worker about to spawn (the pool's token and the set in force), and that set's generation. */
  spawnEnvironment(): { env: Record<string, string>; generation: number } {
    return {
      env: {
        PROCGRPC_CONTROL_TOKEN: this.token,
        PROCGRPC_SWITCHED_OFF: this.current().targets.join(","),
        PROCGRPC_SWITCHED_OFF_GENERATION: String(this.generation),
      },
      generation: this.generation,
    };
  }

  /** `worker` was made with `spawnEnvironment()` of `generation`. */
  spawned(worker: SwitchableWorker, generation: number): void {
    this.applied.set(worker, generation);
  }

  /**
   * A worker is SERVING and about to take calls: pushes the set when it changed since the
   * worker was spawned (rejects when the worker does not take it: the start fails).
   */
  async prepare(worker: SwitchableWorker, deadline: Date): Promise<void> {
    this.started.add(worker);
    if ((this.applied.get(worker) ?? -1) >= this.generation) return;
    await this.push(worker, deadline);
  }

  /** `worker` has exited: no more pushes to it. */
  forget(worker: SwitchableWorker): void {
    this.started.delete(worker);
  }

  /** Stops pushing (the pool shuts down). */
  close(): void {
    this.closed = true;
    this.started.clear();
  }

  /**
   * Pushes the set in force to every started worker that does not have it yet; resolves once
   * each has it, has exited, or did not take it for `GIVE_UP_AFTER_MS` (logged as an error: its
   * direct clients are not held by the switch). Never rejects.
   */
  async sync(): Promise<void> {
    const generation = this.generation;
    await Promise.all([...this.started].map((w) => this.pushUntilApplied(w, generation)));
  }

  private async push(worker: SwitchableWorker, deadline: Date): Promise<void> {
    const channel = worker.channel;
    if (!channel) throw new Error(`worker ${worker.id} has no channel`);
    const sent = this.current();
    const answer = await this.send(channel, this.token, sent, deadline);
    if (!(answer.generation >= sent.generation)) throw new Error(`worker ${worker.id} answered generation ${answer.generation} to ${sent.generation}`);
    this.applied.set(worker, Math.max(this.applied.get(worker) ?? -1, answer.generation));
  }

  private async pushUntilApplied(worker: SwitchableWorker, generation: number): Promise<void> {
    const since = Date.now();
    let backoff = 50;
    for (;;) {
      if (this.closed || worker.exit !== undefined || !this.started.has(worker)) return;
      if ((this.applied.get(worker) ?? -1) >= generation) return;
      try {
        await this.push(worker, new Date(Date.now() + PUSH_TIMEOUT_MS));
        return;
      } catch (err) {
        if (this.closed || worker.exit !== undefined) return;
        if (Date.now() - since > GIVE_UP_AFTER_MS) {
          this.logger.error({ workerId: worker.id, err: (err as Error).message, generation }, "kill switch: the worker did not take the switched-off set; clients calling its socket directly are not held by it");
          return;
        }
        this.logger.warn({ workerId: worker.id, err: (err as Error).message }, "kill switch: pushing the switched-off set to a worker failed; retrying");
        await new Promise((resolve) => setTimeout(resolve, backoff).unref());
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
      }
    }
  }
}
