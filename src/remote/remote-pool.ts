import type { ServiceError } from "@grpc/grpc-js";
import { Metadata } from "../core/grpc-metadata";
import type { Call, Interceptor } from "../call/interceptor";
import { jsonLogger, resolveLogLevel } from "../core/logger";
import type { MetadataInit } from "../core/metadata";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import { CallSurface, type PoolState } from "../client/call-surface";
import type { CircuitsHealth } from "../resilience/pool-resilience";
import type { Lease } from "../transport/call-target";
import { checkHealth, type ServingStatus } from "../transport/health-check";
import { rpcErrorFromStatus } from "../transport/grpc-status";
import type { OutgoingCall } from "../transport/outgoing-call";
import { runUnaryCall } from "../transport/unary-call";
import { requestBytes, type UnaryRequest } from "../transport/unary-request";
import { resolveRemoteOptions, type RemotePoolOptions, type ResolvedRemoteOptions } from "./remote-options";
import { RemoteTarget, type TargetState } from "./remote-target";
import { withTlsHint } from "./tls-hint";

/** A target as `health()` reports it. */
export interface RemoteTargetHealth {
  id: string;
  /** The grpc-js channel state: `READY`, `CONNECTING`, `IDLE`, `TRANSIENT_FAILURE`, `SHUTDOWN`. */
  state: TargetState;
  /** The last grpc.health.v1 answer of a single-endpoint target (undefined before one, and for `dns:` targets). */
  serving: ServingStatus | undefined;
  inFlight: number;
  served: number;
}

/** The remote pool as `health()` reports it. */
export interface RemotePoolHealth {
  state: PoolState;
  total: number;
  /** Targets whose channel is READY. */
  ready: number;
  targets: RemoteTargetHealth[];
  /** The circuit breakers' circuits (empty without breakers). */
  circuits: CircuitsHealth;
}

/** Events a `RemotePool` emits (none yet; the pool has the same emitter surface as `WorkerPool`). */
export type RemotePoolEvents = Record<never, never>;

/** `start()` could not reach a target: which one and the last error it gave. */
export class RemoteStartError extends Error {
  constructor(readonly failures: readonly { target: string; reason: string }[], timeoutMs: number) {
    super(`RemotePool.start(): ${failures.map((f) => `${f.target} did not answer grpc.health.v1 SERVING within ${timeoutMs} ms (${f.reason})`).join("; ")}`);
    this.name = "RemoteStartError";
  }
}

/**
 * Python workers on other hosts, reached over TCP (TLS, bearer token) with grpc-js's own name
 * resolution and balancing: the same `client(Definition)`, `dynamicClient`, `batch`, interceptors,
 * resilience options and `RpcError` model as `WorkerPool` (one `CallSurface`), without process
 * supervision (whatever runs the workers, e.g. Kubernetes, supervises them). See docs/scaling.md.
 */
export class RemotePool extends CallSurface<RemotePoolEvents> {
  private readonly options: ResolvedRemoteOptions;
  private readonly targets: RemoteTarget[] = [];
  private shutdownPromise: Promise<void> | undefined;
  private rotate = 0;
  private healthTimer: NodeJS.Timeout | undefined;

  /** Validates options at once (targets, TLS, the plaintext rule); no connection is made before `start()`. */
  constructor(options: RemotePoolOptions) {
    const resolved = resolveRemoteOptions(options);
    super({
      name: "RemotePool",
      logger: options.logger ?? jsonLogger(resolveLogLevel("RemotePool", options.logLevel)),
      requestTimeoutMs: resolved.requestTimeoutMs,
      interceptors: options.middleware,
      attemptInterceptors: options.attemptMiddleware,
      innerInterceptors: resolved.token === undefined ? [] : [bearerToken(resolved.token)],
      resilience: options,
    });
    this.options = resolved;
  }

  /**
   * Opens one channel per target and (unless `checkOnStart: false`) waits until each answers
   * grpc.health.v1 Check with SERVING; rejects with a `RemoteStartError` naming every target
   * that did not, with its last error (e.g. a TLS failure), and closes the channels.
   */
  async start(): Promise<void> {
    if (this.stateValue !== "new") throw new Error(`RemotePool.start(): the pool is already ${this.stateValue}; create a new pool`);
    this.stateValue = "starting";
    for (const id of this.options.targets) this.targets.push(new RemoteTarget(id, this.options));
    if (this.options.checkOnStart) {
      const results = await Promise.all(this.targets.map((t) => this.awaitServing(t)));
      const failures = results.flatMap((reason, i) => (reason === undefined ? [] : [{ target: this.targets[i].id, reason }]));
      if (failures.length > 0) {
        for (const t of this.targets) t.close();
        this.stateValue = "stopped";
        this.disposeResilience();
        throw new RemoteStartError(failures, this.options.startTimeoutMs);
      }
    }
    if ((this.stateValue as string) !== "starting") return;
    this.stateValue = "running";
    const interval = this.options.healthCheckIntervalMs;
    if (interval > 0) {
      const checkAll = (): void => this.targets.forEach((t) => t.checkHealth(Math.min(interval, 2000)));
      checkAll();
      this.healthTimer = setInterval(checkAll, interval);
      this.healthTimer.unref();
    }
    this.logger.info({ targets: this.options.targets, tls: this.options.tls !== undefined, token: this.options.token !== undefined }, "remote pool running");
  }

  /** Resolves with undefined once `target` answers SERVING, or with the last failure when start time runs out. */
  private async awaitServing(target: RemoteTarget): Promise<string | undefined> {
    const until = Date.now() + this.options.startTimeoutMs;
    let last = "no answer";
    while (Date.now() < until) {
      const channel = target.channel;
      if (!channel) return "channel closed";
      const deadlineAt = Math.min(until, Date.now() + 2000);
      try {
        const status = await checkHealth(channel, new Date(deadlineAt));
        if (status === "SERVING") return undefined;
        last = `health answered ${status}`;
      } catch (err) {
        const e = err as Partial<ServiceError>;
        const facts = { method: "/grpc.health.v1.Health/Check", workerId: target.id, idempotent: true, deadlineAt, deadlineKind: "transport" as const, startedAt: Date.now() };
        const rpc = withTlsHint(rpcErrorFromStatus({ code: e.code ?? Status.UNKNOWN, details: e.details ?? String(err), metadata: e.metadata }, facts), target.id) as RpcError;
        last = `${Status[rpc.code()]}: ${rpc.details()}`;
      }
      await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, until - Date.now()))));
    }
    return last;
  }

  /**
   * Admission: the target with the fewest calls in flight among those whose channel is not
   * failing and that do not answer NOT_SERVING (all of them when every one is, so that the call
   * fails with the channel's own reason, e.g. a TLS error). No queue: grpc-js queues per channel.
   */
  protected acquire(call: Call, out: OutgoingCall): Lease {
    const exclude = call.excludeWorkers;
    const avoid = call.avoidWorkers;
    const allowed = this.targets.filter((t) => !exclude?.has(t.id));
    if (allowed.length === 0) {
      throw new RpcError({ code: Status.UNAVAILABLE, details: `no remote target available: all ${this.targets.length} are excluded (open circuit breakers)`, category: "lifecycle", method: out.method.path, requestId: out.requestId, reachedWorker: false, idempotent: out.idempotent });
    }
    const healthy = allowed.filter((t) => t.state !== "TRANSIENT_FAILURE" && t.serving !== "NOT_SERVING");
    const preferred = healthy.filter((t) => !avoid?.has(t.id));
    const candidates = preferred.length > 0 ? preferred : healthy.length > 0 ? healthy : allowed;
    let best: RemoteTarget | undefined;
    const start = this.rotate++;
    for (let i = 0; i < candidates.length; i++) {
      const t = candidates[(start + i) % candidates.length];
      if (!best || t.inFlight < best.inFlight) best = t;
    }
    const target = best as RemoteTarget;
    target.inFlight += 1;
    return this.issueLease(target, () => {
      target.inFlight -= 1;
      target.served += 1;
    });
  }

  /** Plain gRPC to the target; a TLS failure gets a hint at what to check. */
  protected override runUnary(out: OutgoingCall, payload: UnaryRequest, lease: Lease): Promise<unknown> {
    // A remote pool has no lane: its requests are always bytes.
    return runUnaryCall(out, requestBytes(payload), lease).catch((err: unknown) => {
      throw withTlsHint(err, lease.target.id);
    });
  }

  /** Every target's channel state and call counts. */
  health(): RemotePoolHealth {
    const targets = this.targets.map((t) => ({ id: t.id, state: t.state, serving: t.serving, inFlight: t.inFlight, served: t.served }));
    return { state: this.stateValue, total: targets.length, ready: targets.filter((t) => t.state === "READY").length, targets, circuits: this.builtIn.circuits() };
  }

  /**
   * Stops the pool: new calls fail with FAILED_PRECONDITION, in-flight calls get `graceMs` to
   * finish, then the channels are closed. The remote workers keep running. Idempotent.
   */
  shutdown(options: { graceMs?: number } = {}): Promise<void> {
    this.shutdownPromise ??= this.doShutdown(options.graceMs ?? this.options.shutdownGraceMs);
    return this.shutdownPromise;
  }

  private async doShutdown(graceMs: number): Promise<void> {
    if (this.stateValue === "new") {
      this.stateValue = "stopped";
      this.disposeResilience();
      return;
    }
    this.stateValue = "stopping";
    clearInterval(this.healthTimer);
    await this.waitForIdle(graceMs);
    for (const t of this.targets) t.close();
    this.disposeResilience();
    this.stateValue = "stopped";
  }
}

/** Adds `authorization: Bearer <token>` to every attempt unless the caller set an authorization header. */
function bearerToken(token: string): Interceptor {
  const value = `Bearer ${token}`;
  return (call, next) => {
    const md: MetadataInit | undefined = call.options.metadata;
    if (md instanceof Metadata) {
      if (md.get("authorization").length > 0) return next(call);
      const copy = md.clone();
      copy.set("authorization", value);
      return next({ ...call, options: { ...call.options, metadata: copy } });
    }
    if (md && Object.keys(md).some((k) => k.toLowerCase() === "authorization")) return next(call);
    return next({ ...call, options: { ...call.options, metadata: { ...md, authorization: value } } });
  };
}
