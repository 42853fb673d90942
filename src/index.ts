/**
 * procgrpc: call Python from Node.js over real gRPC. A supervised pool of Python worker
 * processes serves proto-defined services on Unix sockets; TypeScript calls them through typed clients.
 * Everything public is exported here.
 */
export { WorkerPool } from "./pool/worker-pool";
export type { CircuitTarget, PoolHealth, PoolState, ScalingHealth, WorkerHealth, WorkerPoolEvents } from "./pool/worker-pool";
export type { WorkerPoolOptions, RestartOptions } from "./pool/options";
export type { SharedMemoryLaneOptions } from "./transport/lane-options";
export type { WorkerScalingOptions } from "./pool/scaling-options";
export type { PerSlot, WorkerSlotInfo } from "./pool/slot-resources";
export type { ScaleReason } from "./pool/autoscaler";
export type { HangReason, SlotRole } from "./pool/pool-events";
export type { RecycleReason } from "./pool/recycle-policy";
export type { WorkerState } from "./pool/worker-state";
export { jsonLogger, silentLogger } from "./core/logger";
export type { Logger, LogLevel } from "./core/logger";
export { MAX_SOCKET_PATH_BYTES } from "./pool/socket-dir";
export { RemotePool, RemoteStartError } from "./remote/remote-pool";
export type { RemotePoolHealth, RemoteTargetHealth, RemotePoolEvents } from "./remote/remote-pool";
export type { RemotePoolOptions, RemoteTlsOptions } from "./remote/remote-options";
export type { TargetState } from "./remote/remote-target";
export { routedClient } from "./client/routed-client";
export type { ClientSource, Routes } from "./client/routed-client";

export type { Client, ClientOptions, MethodCall, RequestStream } from "./client/typed-client";
export { pushable } from "./call/pushable";
export type { Pushable, PushableOptions } from "./call/pushable";
export type { CallOptions, Middleware, UnaryCall, UnaryMiddleware, NextUnary } from "./client/call-options";
export { composeInterceptors, composeInterceptors as composeMiddleware, respondsWithStream } from "./call/interceptor";
export type { Call, Interceptor, Next } from "./call/interceptor";
export { observeCall } from "./call/observe-call";
export type { CallObserver } from "./call/observe-call";
export type { BaseCallOptions, NoExtraOptions } from "./call/call-options";
export type { MetadataInit } from "./core/metadata";
export { REQUEST_ID_KEY, CALL_ID_KEY, MAX_REQUEST_METADATA_BYTES, withMetadata } from "./core/metadata";
export type { MessageType, MethodDefinition, ServiceDefinition, RequestOf, ResponseOf } from "./call/definition";
export { methodOf } from "./call/method";
export type { AnyMethod, CallKind, StreamMethod, UnaryMethod } from "./call/method";
export type { DynamicClient, DynamicClientOptions, PlainMessage } from "./client/dynamic-client";

export { Status, statusName } from "./core/status";
export type { ErrorCategory, TimeoutKind } from "./core/categories";
export { RpcError, isRpcError, isTimeout, isConnectionError, isProtocolError, isWorkerError, isLifecycleError } from "./core/rpc-error";
export type { RpcErrorInit } from "./core/rpc-error";
export { WorkerStartError } from "./pool/worker-start-error";
export { decodeStatusDetails, STATUS_DETAILS_KEY } from "./core/status-details";
export type {
  StatusDetail,
  StatusDetailKind,
  KnownStatusDetail,
  UnknownStatusDetail,
  DetailValue,
  BadRequest,
  DebugInfo,
  ErrorInfo,
  Help,
  LocalizedMessage,
  PreconditionFailure,
  QuotaFailure,
  RequestInfo,
  ResourceInfo,
  RetryInfo,
} from "./core/status-details";

export { Metadata } from "./core/grpc-metadata";

export { metricsMiddleware } from "./observability/metrics-middleware";
export type { MetricsMiddlewareOptions } from "./observability/metrics-middleware";
export { observePoolMetrics } from "./observability/pool-metrics";
export type { PoolMetricsOptions, PoolMetricsHandle } from "./observability/pool-metrics";
export { startPrometheusEndpoint } from "./observability/prometheus-endpoint";
export type { PrometheusEndpoint, PrometheusEndpointOptions } from "./observability/prometheus-endpoint";
export { tracingMiddleware } from "./observability/tracing-middleware";
export type { TracingMiddleware, TracingOptions } from "./observability/tracing-middleware";
export { callLogMiddleware } from "./observability/call-log-middleware";
export type { CallLogOptions } from "./observability/call-log-middleware";
export type { SemconvMode } from "./observability/semconv";

export type { CallDefaults } from "./call/call-defaults";

export type { WorkerFilter } from "./call/interceptor";
export { ExponentialBackoff, DEFAULT_BACKOFF } from "./resilience/backoff";
export type { BackoffOptions } from "./resilience/backoff";
export { RetryBudget } from "./resilience/retry-budget";
export type { RetryBudgetOptions } from "./resilience/retry-budget";
export { retryVerdict, serverDelay, RETRY_CODES, PUSHBACK_KEY, DEFAULT_MAX_ATTEMPTS } from "./resilience/retry-policy";
export type { RetryOptions, RetryVerdict, ServerDelay } from "./resilience/retry-policy";
export { retryMiddleware } from "./resilience/retry-middleware";
export type { RetryMiddlewareOptions } from "./resilience/retry-middleware";
export { CircuitBreaker } from "./resilience/circuit-breaker";
export type { CircuitBreakerOptions } from "./resilience/circuit-breaker";
export { methodBreaker } from "./resilience/method-breaker";
export type { MethodBreaker, MethodBreakerOptions } from "./resilience/method-breaker";
export { workerBreaker } from "./resilience/worker-breaker";
export type { WorkerBreaker, WorkerBreakerOptions } from "./resilience/worker-breaker";
export { circuitOpenError, isCircuitOpen, CIRCUIT_OPEN_REASON } from "./resilience/circuit-open-error";
export { isSwitchedOff, switchedOffError, SWITCHED_OFF_REASON } from "./resilience/kill-switch";
export { hedgingMiddleware } from "./resilience/hedging";
export type { HedgeOptions, HedgingMiddlewareOptions } from "./resilience/hedging";
export { fallbackMiddleware, fallbackApplies } from "./resilience/fallback";
export type { FallbackMiddlewareOptions } from "./resilience/fallback";
export { ResilienceEvents } from "./resilience/events";
export type {
  ResilienceEventMap,
  ResilienceCounters,
  RetryEvent,
  RetryStopEvent,
  RetryStopReason,
  DelaySource,
  CircuitState,
  CircuitStateEvent,
  CircuitRejectEvent,
  HedgeEvent,
  HedgeSettledEvent,
  FallbackEvent,
} from "./resilience/events";
export type { PoolResilienceOptions, PoolRetryOptions } from "./resilience/pool-resilience";
export { runBatch } from "./resilience/batch";
export type { BatchFailure, BatchOptions, BatchProgress, BatchResult, DeadLetterWriteFailure } from "./resilience/batch";
export { MemoryDeadLetterStore, supportsClaims } from "./resilience/dead-letter-store";
export type { ClaimingDeadLetterStore, DeadLetter, DeadLetterClaim, DeadLetterFailure, DeadLetterStore } from "./resilience/dead-letter-store";
export { DirectoryDeadLetterStore } from "./resilience/directory-dead-letter-store";
export type { ClaimInfo } from "./resilience/directory-dead-letter-store";
export type { ClaimOwner } from "./resilience/claim-owner";
export { JsonlDeadLetterStore } from "./resilience/jsonl-dead-letter-store";
export { replayDeadLetters } from "./resilience/replay";
export type { ReplayOptions, ReplayProgress, ReplayResult, UnaryRunner } from "./resilience/replay";
export { rawUnaryMethod } from "./call/raw-method";
