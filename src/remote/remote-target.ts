import type { ChannelCredentials, ChannelOptions, Client, connectivityState } from "@grpc/grpc-js";
import { grpcJs } from "../core/grpc-js";
import type { CallTarget, WorkerCall } from "../transport/call-target";
import { checkHealth, type ServingStatus } from "../transport/health-check";
import type { ResolvedRemoteOptions } from "./remote-options";

/** A target's channel state as grpc-js reports it (`READY`, `CONNECTING`, `IDLE`, `TRANSIENT_FAILURE`, `SHUTDOWN`). */
export type TargetState = keyof typeof connectivityState;

/** The channel credentials for the options: TLS (optionally with a client certificate) or plaintext. */
export function channelCredentials(options: ResolvedRemoteOptions): ChannelCredentials {
  const tls = options.tls;
  const { credentials } = grpcJs();
  if (!tls) return credentials.createInsecure();
  const buf = (v: Buffer | string | undefined): Buffer | null => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));
  return credentials.createSsl(buf(tls.ca), buf(tls.key), buf(tls.cert));
}

/**
 * Channel options for a remote target: procgrpc's retries instead of grpc-js's, the balancing
 * policy as service config, keepalive so that a silent host is noticed, a short reconnect
 * backoff so that a host that comes back gets traffic soon, and a private subchannel pool.
 */
export function remoteChannelOptions(options: ResolvedRemoteOptions): ChannelOptions {
  return {
    "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ [options.loadBalancing]: {} }] }),
    "grpc.enable_retries": 0,
    "grpc.enable_channelz": 0,
    "grpc.max_receive_message_length": -1,
    "grpc.max_send_message_length": -1,
    "grpc.keepalive_time_ms": options.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": options.keepaliveTimeoutMs,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.initial_reconnect_backoff_ms": options.reconnectInitialBackoffMs,
    "grpc.max_reconnect_backoff_ms": options.reconnectMaxBackoffMs,
    "grpc.use_local_subchannel_pool": 1,
    ...(options.tls?.serverName ? { "grpc.ssl_target_name_override": options.tls.serverName, "grpc.default_authority": options.tls.serverName } : {}),
    ...options.channelOptions,
  };
}

/** One remote target: a grpc-js channel (which may balance over many hosts) and its call counts. */
export class RemoteTarget implements CallTarget {
  readonly calls = new Set<WorkerCall>();
  /** Calls in flight on this target. */
  inFlight = 0;
  /** Calls finished on this target. */
  served = 0;
  channel: Client | undefined;
  /** The last grpc.health.v1 answer (single-endpoint targets only); undefined until one came. */
  serving: ServingStatus | undefined;
  /** True when the target names one host, so that its health answer is that host's. */
  readonly singleEndpoint: boolean;
  private checking = false;

  constructor(readonly id: string, options: ResolvedRemoteOptions) {
    this.channel = new (grpcJs().Client)(id, channelCredentials(options), remoteChannelOptions(options));
    this.singleEndpoint = !id.startsWith("dns:") && !id.includes(",");
  }

  /**
   * Asks the target's health service once (skipped while a check is still running). A failed
   * check leaves the channel state to say whether the host is reachable.
   */
  checkHealth(timeoutMs: number): void {
    const channel = this.channel;
    if (!channel || !this.singleEndpoint || this.checking) return;
    this.checking = true;
    checkHealth(channel, new Date(Date.now() + timeoutMs)).then(
      (status) => (this.serving = status),
      () => (this.serving = undefined),
    ).finally(() => (this.checking = false));
  }

  /** The channel's connectivity state (without making it connect). */
  get state(): TargetState {
    if (!this.channel) return "SHUTDOWN";
    return grpcJs().connectivityState[this.channel.getChannel().getConnectivityState(false)] as TargetState;
  }

  /** Closes the channel; calls still running end with their deadline or their own status. */
  close(): void {
    this.channel?.close();
    this.channel = undefined;
  }
}
