import type { ChannelOptions } from "@grpc/grpc-js";
import type { Interceptor } from "../call/interceptor";
import type { ResilienceCallOptions } from "../resilience/pool-resilience";
import { MAX_TIMER_MS } from "../core/deadline";
import type { Logger, LogLevel } from "../core/logger";
import { integerOption } from "../core/option-checks";
import type { PoolResilienceOptions } from "../resilience/pool-resilience";

/** TLS to remote workers. PEM contents (read the files yourself: `readFileSync("ca.pem")`). */
export interface RemoteTlsOptions {
  /** CA certificate(s) that signed the workers' certificates. Default: the system's roots. */
  ca?: Buffer | string;
  /** Client certificate chain, for workers that require mTLS (`PROCGRPC_TLS_CLIENT_CA`). Give it with `key`. */
  cert?: Buffer | string;
  /** Private key of `cert`. */
  key?: Buffer | string;
  /** Name to verify in the worker's certificate when it differs from the target's host (e.g. an IP target). */
  serverName?: string;
}

/** How to reach workers on other hosts (docs/scaling.md). */
export interface RemotePoolOptions extends PoolResilienceOptions {
  /**
   * gRPC target strings, one grpc-js channel each: `dns:///workers.internal:50051` (every address
   * the name resolves to, balanced by the channel), `10.0.0.5:50051`, `ipv4:10.0.0.5:50051,10.0.0.6:50051`.
   * Calls go to the target with the fewest calls in flight; within a target, grpc-js balances.
   */
  targets: readonly string[];
  /** TLS settings, `true` for TLS with the system's roots, or `false`/absent for plaintext (loopback only unless `allowPlaintext`). */
  tls?: RemoteTlsOptions | boolean;
  /** Allow plaintext to non-loopback targets (e.g. inside a mesh that encrypts). Default false: refused. */
  allowPlaintext?: boolean;
  /** Bearer token sent on every call as `authorization: Bearer <token>` (the worker's `PROCGRPC_TOKEN`). */
  token?: string;
  /** grpc-js load-balancing policy inside each target (service config `loadBalancingConfig`). Default `"round_robin"`. */
  loadBalancing?: "round_robin" | "pick_first";
  /** HTTP/2 keepalive ping interval; a host that does not answer is dropped from balancing. Default 10000. */
  keepaliveTimeMs?: number;
  /** How long a keepalive ping may go unanswered. Default 5000. */
  keepaliveTimeoutMs?: number;
  /** Reconnect backoff after a failed connection: first delay. Default 500. */
  reconnectInitialBackoffMs?: number;
  /** Reconnect backoff cap. Default 5000. */
  reconnectMaxBackoffMs?: number;
  /** Deadline for any call that sets no shorter one (`timeoutKind: "transport"`). Default 30000. */
  requestTimeoutMs?: number;
  /**
   * How often each single-endpoint target (`host:port`, `ipv4:…`) is asked grpc.health.v1 `Check`;
   * a target answering NOT_SERVING gets no calls while another is ready. `dns:` targets balance
   * over many hosts inside grpc-js, so they are not checked (readiness probes or Envoy's health
   * checks keep NOT_SERVING hosts out of DNS). 0 turns checking off. Default 2000.
   */
  healthCheckIntervalMs?: number;
  /** `start()` waits this long for every target to answer grpc.health.v1 SERVING. Default 10000. */
  startTimeoutMs?: number;
  /** Whether `start()` checks the targets (default true); `false` lets channels connect on the first call. */
  checkOnStart?: boolean;
  /** How long `shutdown()` lets in-flight calls finish. Default 5000. */
  shutdownGraceMs?: number;
  /** Extra grpc-js channel options (override procgrpc's). */
  channelOptions?: ChannelOptions;
  /** Middleware around every call of every client of this pool (outermost first). */
  middleware?: readonly Interceptor<ResilienceCallOptions>[];
  /** Middleware around every attempt, inside the built-in retry, hedging and breakers (e.g. `tracing.attempt`). */
  attemptMiddleware?: readonly Interceptor<ResilienceCallOptions>[];
  /** Where the pool logs. Default: JSON lines on stderr at `logLevel`. */
  logger?: Logger;
  /** Level of the default logger (ignored when `logger` is given). Default `$PROCGRPC_LOG_LEVEL`, else `"warn"`. */
  logLevel?: LogLevel;
}

/** Options after defaults and validation. */
export interface ResolvedRemoteOptions {
  targets: readonly string[];
  tls: RemoteTlsOptions | undefined;
  token: string | undefined;
  loadBalancing: "round_robin" | "pick_first";
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  reconnectInitialBackoffMs: number;
  reconnectMaxBackoffMs: number;
  requestTimeoutMs: number;
  healthCheckIntervalMs: number;
  startTimeoutMs: number;
  checkOnStart: boolean;
  shutdownGraceMs: number;
  channelOptions: ChannelOptions;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  return integerOption("RemotePool", name, value, fallback, { min, max: MAX_TIMER_MS });
}

/** The host part of a target string, for the loopback rule ("" when it cannot be told). */
export function hostsOfTarget(target: string): string[] {
  let rest = target;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(rest);
  if (scheme && !/^\d+$/.test(rest.slice(scheme[0].length).split("/")[0] ?? "")) {
    rest = rest.slice(scheme[0].length).replace(/^\/\/[^/]*\//, "").replace(/^\/+/, "");
    if (scheme[1] === "unix" || scheme[1] === "unix-abstract") return ["localhost"];
  }
  return rest.split(",").map((addr) => {
    const v6 = /^\[([^\]]+)\]/.exec(addr);
    if (v6) return v6[1];
    const colon = addr.lastIndexOf(":");
    return colon > 0 && addr.indexOf(":") === colon ? addr.slice(0, colon) : addr;
  });
}

/** localhost, 127.0.0.0/8 and ::1. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === "::1";
}

/** Validates the options; throws a TypeError/RangeError naming the option and what to do. */
export function resolveRemoteOptions(options: RemotePoolOptions): ResolvedRemoteOptions {
  if (typeof options !== "object" || options === null) throw new TypeError("RemotePool: options object is required");
  const targets = options.targets;
  if (!Array.isArray(targets) || targets.length === 0 || targets.some((t) => typeof t !== "string" || !t.trim())) {
    throw new TypeError('RemotePool: `targets` must be a non-empty array of gRPC targets, e.g. ["dns:///workers.internal:50051"]');
  }
  if (new Set(targets).size !== targets.length) throw new TypeError(`RemotePool: \`targets\` has duplicates: ${targets.join(", ")}`);
  const tls = options.tls === true ? {} : options.tls === false || options.tls === undefined ? undefined : options.tls;
  if (tls && !tls.cert !== !tls.key) throw new TypeError("RemotePool: tls.cert and tls.key go together (a client certificate for mTLS)");
  if (!tls && !options.allowPlaintext) {
    const remote = targets.filter((t) => !hostsOfTarget(t).every(isLoopbackHost));
    if (remote.length > 0) {
      throw new TypeError(
        `RemotePool: refusing plaintext gRPC to ${remote.join(", ")}: not a loopback address. Set \`tls\` (e.g. { ca: readFileSync("ca.pem") }), or \`allowPlaintext: true\` if the network already encrypts (a mesh)`,
      );
    }
  }
  if (options.token !== undefined && (typeof options.token !== "string" || !options.token.trim() || /[\r\n]/.test(options.token))) {
    throw new TypeError("RemotePool: `token` must be a non-empty string without line breaks");
  }
  const lb = options.loadBalancing ?? "round_robin";
  if (lb !== "round_robin" && lb !== "pick_first") throw new TypeError(`RemotePool: loadBalancing must be "round_robin" or "pick_first", got ${String(lb)}`);
  return {
    targets: [...targets],
    tls,
    token: options.token,
    loadBalancing: lb,
    keepaliveTimeMs: positiveInt("keepaliveTimeMs", options.keepaliveTimeMs, 10_000),
    keepaliveTimeoutMs: positiveInt("keepaliveTimeoutMs", options.keepaliveTimeoutMs, 5000),
    reconnectInitialBackoffMs: positiveInt("reconnectInitialBackoffMs", options.reconnectInitialBackoffMs, 500),
    reconnectMaxBackoffMs: positiveInt("reconnectMaxBackoffMs", options.reconnectMaxBackoffMs, 5000),
    requestTimeoutMs: positiveInt("requestTimeoutMs", options.requestTimeoutMs, 30_000),
    healthCheckIntervalMs: positiveInt("healthCheckIntervalMs", options.healthCheckIntervalMs, 2000, 0),
    startTimeoutMs: positiveInt("startTimeoutMs", options.startTimeoutMs, 10_000),
    checkOnStart: options.checkOnStart ?? true,
    shutdownGraceMs: positiveInt("shutdownGraceMs", options.shutdownGraceMs, 5000, 0),
    channelOptions: options.channelOptions ?? {},
  };
}
