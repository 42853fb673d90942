import { Metadata } from "./grpc-metadata";
import type { ErrorCategory, TimeoutKind } from "./categories";
import { Status, statusName } from "./status";
import type { DetailValue, StatusDetail, StatusDetailKind } from "./status-details";
import { retryPolicyFor } from "./retryability";

const BRAND = Symbol.for("procgrpc.RpcError");

/** Everything an `RpcError` is made of; only `code`, `details` and `category` are required. */
export interface RpcErrorInit {
  code: Status;
  details: string;
  category: ErrorCategory;
  /** Which limit fired, when `category` is `"timeout"`. */
  timeoutKind?: TimeoutKind;
  /** Full gRPC path, e.g. `/demo.v1.DemoService/Echo`. */
  method?: string;
  /** The pool worker that handled (or was about to handle) the call. */
  workerId?: string;
  /** How many attempts were made; 1 unless a retry policy ran. */
  attempts?: number;
  /** Status code of each attempt, oldest first. */
  attemptCodes?: readonly Status[];
  /** The request id sent as `x-request-id`. */
  requestId?: string;
  initialMetadata?: Metadata;
  trailingMetadata?: Metadata;
  statusDetails?: readonly StatusDetail[];
  /** Whether the request may have reached the worker; decides retry safety for connection errors. */
  reachedWorker?: boolean;
  /** Whether the method is idempotent; decides retry safety after the worker may have run it. */
  idempotent?: boolean;
  /** Overrides the `retryable` the category table gives. */
  retryable?: boolean;
  cause?: unknown;
}

/**
 * The one error type every failed procgrpc call rejects with: a gRPC status code, the details,
 * what the worker sent, which of pyproc's categories the failure falls in, and whether retrying
 * can help. Normalise anything else with `RpcError.from(value)`.
 */
export class RpcError extends Error {
  /** What kind of failure this is; see `ErrorCategory`. */
  readonly category: ErrorCategory;
  /** Which limit fired, when `category === "timeout"`. */
  readonly timeoutKind: TimeoutKind | undefined;
  /** True when repeating the call (after a backoff) can succeed and is safe. */
  readonly retryable: boolean;
  /** True when the failure should count against a service-level objective (false for caller mistakes, lifecycle and bugs). */
  readonly countsTowardSlo: boolean;
  /** Full gRPC method path, e.g. `/demo.v1.DemoService/Echo`. */
  readonly method: string | undefined;
  /** Id of the pool worker involved, when one was. */
  readonly workerId: string | undefined;
  /** Number of attempts made. */
  readonly attempts: number;
  /** The status code of each attempt, oldest first. */
  readonly attemptCodes: readonly Status[];
  /** The `x-request-id` the call carried. */
  readonly requestId: string | undefined;
  /** Whether the request may have reached a worker (false: it certainly did not run). */
  readonly reachedWorker: boolean;
  /** Decoded `google.rpc.Status.details` from `grpc-status-details-bin`; empty when none was sent. */
  readonly statusDetails: readonly StatusDetail[];
  private readonly statusCode: Status;
  private readonly statusMessage: string;
  private readonly initial: Metadata;
  private readonly trailing: Metadata;

  /**
   * `err instanceof RpcError` is true for an `RpcError` from any copy of procgrpc in the process
   * (two installed versions, a bundled and an external copy), as with connect-es's ConnectError.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isRpcError(value);
  }

  constructor(init: RpcErrorInit) {
    const method = init.method;
    super(`${statusName(init.code)}: ${init.details}${method ? ` (${method})` : ""}`, { cause: init.cause });
    Object.defineProperty(this, BRAND, { value: true });
    this.name = "RpcError";
    this.statusCode = init.code;
    this.statusMessage = init.details;
    this.category = init.category;
    this.timeoutKind = init.category === "timeout" ? (init.timeoutKind ?? "context") : undefined;
    this.method = method;
    this.workerId = init.workerId;
    this.attempts = init.attempts ?? 1;
    this.attemptCodes = init.attemptCodes ?? [init.code];
    this.requestId = init.requestId;
    this.reachedWorker = init.reachedWorker ?? true;
    this.initial = init.initialMetadata ?? new Metadata();
    this.trailing = init.trailingMetadata ?? new Metadata();
    this.statusDetails = init.statusDetails ?? [];
    const policy = retryPolicyFor(init.category, init.code, {
      idempotent: init.idempotent ?? false,
      reachedWorker: this.reachedWorker,
    });
    this.retryable = init.retryable ?? policy.retryable;
    this.countsTowardSlo = policy.countsTowardSlo;
  }

  /** The gRPC status code. */
  code(): Status {
    return this.statusCode;
  }

  /** The status message (gRPC "details" string). */
  details(): string {
    return this.statusMessage;
  }

  /** Trailing metadata the worker sent, without transport keys (`grpc-status`, `grpc-message`, …); `-bin` values are Buffers. */
  trailingMetadata(): Metadata {
    return this.trailing;
  }

  /** Initial (header) metadata the worker sent, without transport keys. */
  initialMetadata(): Metadata {
    return this.initial;
  }

  /** The first status detail of the given kind, e.g. `err.findDetail("RetryInfo")?.retryDelay`. */
  findDetail<K extends StatusDetailKind>(kind: K): DetailValue<K> | undefined {
    const found = this.statusDetails.find((d) => d.kind === kind);
    return found?.value as DetailValue<K> | undefined;
  }

  /** A copy with some fields replaced (used by retry and hedging to record attempts). */
  with(changes: Partial<RpcErrorInit>): RpcError {
    return new RpcError({ ...this.toInit(), ...changes });
  }

  private toInit(): RpcErrorInit {
    return {
      code: this.statusCode,
      details: this.statusMessage,
      category: this.category,
      timeoutKind: this.timeoutKind,
      method: this.method,
      workerId: this.workerId,
      attempts: this.attempts,
      attemptCodes: this.attemptCodes,
      requestId: this.requestId,
      initialMetadata: this.initial,
      trailingMetadata: this.trailing,
      statusDetails: this.statusDetails,
      reachedWorker: this.reachedWorker,
      retryable: this.retryable,
      cause: this.cause,
    };
  }

  /**
   * Normalises anything thrown into an `RpcError`: an `RpcError` (from any copy of procgrpc) is
   * returned as is; an `AbortError` becomes CANCELLED, a `TimeoutError` DEADLINE_EXCEEDED; a
   * grpc-js status error keeps its code, details and metadata; anything else is UNKNOWN
   * (category `protocol`: a fault in the call path rather than in the worker). The original is `cause`.
   */
  static from(value: unknown, method?: string): RpcError {
    if (isRpcError(value)) return value;
    if (value instanceof Error || isErrorLike(value)) {
      const err = value as Error & { code?: unknown; details?: unknown; metadata?: unknown };
      if (err.name === "AbortError") {
        return new RpcError({ code: Status.CANCELLED, details: err.message || "call cancelled", category: "cancelled", method, cause: value });
      }
      if (err.name === "TimeoutError") {
        return new RpcError({ code: Status.DEADLINE_EXCEEDED, details: err.message || "deadline exceeded", category: "timeout", timeoutKind: "context", method, cause: value });
      }
      if (typeof err.code === "number" && err.code in Status && typeof err.details === "string") {
        return new RpcError({
          code: err.code as Status,
          details: err.details,
          category: "worker",
          method,
          trailingMetadata: err.metadata instanceof Metadata ? err.metadata : undefined,
          cause: value,
        });
      }
      return new RpcError({ code: Status.UNKNOWN, details: err.message || String(value), category: "protocol", method, cause: value });
    }
    return new RpcError({ code: Status.UNKNOWN, details: String(value), category: "protocol", method, cause: value });
  }
}

function isErrorLike(value: unknown): boolean {
  return typeof value === "object" && value !== null && "message" in value && "name" in value;
}

/** True for an `RpcError` from this or any other copy of procgrpc in the process. */
export function isRpcError(value: unknown): value is RpcError {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

/** True when `value` is an `RpcError` of category `timeout` (DEADLINE_EXCEEDED). */
export function isTimeout(value: unknown): value is RpcError {
  return isRpcError(value) && value.category === "timeout";
}

/** True when `value` is an `RpcError` of category `connection` (worker unreachable or connection broken). */
export function isConnectionError(value: unknown): value is RpcError {
  return isRpcError(value) && value.category === "connection";
}

/** True when `value` is an `RpcError` of category `protocol` (undecodable or malformed traffic). */
export function isProtocolError(value: unknown): value is RpcError {
  return isRpcError(value) && value.category === "protocol";
}

/** True when `value` is an `RpcError` of category `worker` (the servicer set the status or raised). */
export function isWorkerError(value: unknown): value is RpcError {
  return isRpcError(value) && value.category === "worker";
}

/** True when `value` is an `RpcError` of category `lifecycle` (pool not started, shut down, no worker, queue full). */
export function isLifecycleError(value: unknown): value is RpcError {
  return isRpcError(value) && value.category === "lifecycle";
}
