import type { CallOptions } from "../call/call-options";
import { effectiveDeadline } from "../core/deadline";
import type { UnaryMiddleware } from "../call/interceptor";
import { RpcError } from "../core/rpc-error";
import type { Status } from "../core/status";
import { errorFromAbort } from "../transport/unary-call";
import { ExponentialBackoff } from "./backoff";
import type { ResilienceEvents, RetryStopReason } from "./events";
import { RetryBudget, type RetryBudgetOptions } from "./retry-budget";
import { DEFAULT_MAX_ATTEMPTS, retryVerdict, serverDelay, type RetryOptions } from "./retry-policy";
import { sleep } from "./sleep";

/** Options of `retryMiddleware`: the default `RetryOptions` plus what the middleware shares between calls. */
export interface RetryMiddlewareOptions extends RetryOptions {
  /** Retry calls whose options say nothing about `retry`. Default true; the pool passes false unless its `retry` option is set. */
  enabled?: boolean;
  /** Retry throttling shared by every call through this middleware; `false` disables it. Default `new RetryBudget()`. */
  budget?: RetryBudget | RetryBudgetOptions | false;
  /** Where `retry` and `retryStop` events go. */
  events?: ResilienceEvents;
  /** The pool's default deadline, so that one overall deadline spans every attempt even when the call sets none. */
  requestTimeoutMs?: number;
  /** Random source for the jitter (tests). Default Math.random. */
  random?: () => number;
}

// When each failed call first failed, for dead-letter records (`firstFailureAt`).
const firstFailures = new WeakMap<RpcError, number>();

/** When the first attempt of the call that ended in `err` failed (epoch ms), if a retry policy saw it. */
export function firstFailureTime(err: RpcError): number | undefined {
  return firstFailures.get(err);
}

/**
 * Retries failed calls with exponential backoff and full jitter, under the retry safety rule
 * (`retryVerdict`), one overall deadline across attempts, the worker's RetryInfo / pushback, a retry
 * budget, and a different worker for each retry when another is ready. The final `RpcError` has
 * `attempts` and `attemptCodes`.
 */
export function retryMiddleware(options: RetryMiddlewareOptions = {}): UnaryMiddleware {
  const { enabled = true, events, requestTimeoutMs, random } = options;
  const budget = options.budget === false ? undefined : options.budget instanceof RetryBudget ? options.budget : new RetryBudget(options.budget ?? {});
  const base = pickRetryOptions(options);
  // Validate the defaults once, at construction.
  resolveConfig(base, random);
  return async (call, next) => {
    const setting = call.options.retry;
    if (setting === false || (setting === undefined && !enabled)) return next(call);
    const config = resolveConfig(typeof setting === "object" ? { ...base, ...setting } : base, random);
    const { method, options: callOptions } = call;
    const idempotent = method.idempotent || callOptions.idempotent === true;
    const start = Date.now();
    const overall = overallDeadline(callOptions, requestTimeoutMs, start);
    const signal = callOptions.signal;
    const avoid = new Set<string>(call.avoidWorkers ?? []);
    const codes: Status[] = [];
    let firstFailureAt: number | undefined;
    for (let attempt = 1; ; attempt++) {
      const attemptOptions: CallOptions = { ...callOptions, timeoutMs: config.perAttemptTimeoutMs, deadline: overall?.at };
      try {
        const response = await next({ ...call, options: attemptOptions, avoidWorkers: avoid.size > 0 ? avoid : undefined });
        budget?.onSuccess();
        return response;
      } catch (thrown) {
        const err = RpcError.from(thrown, method.path);
        const now = Date.now();
        firstFailureAt ??= now;
        codes.push(...err.attemptCodes);
        if (err.workerId) avoid.add(err.workerId);
        const verdict = retryVerdict(err, { idempotent, overallDeadlineAt: overall?.at, now });
        let stop: RetryStopReason | undefined = verdict.retry ? undefined : verdict.reason;
        if (verdict.retry) budget?.onFailure();
        let delayMs = 0;
        let delaySource: "backoff" | "retry-info" | "pushback" = "backoff";
        if (!stop && attempt >= config.maxAttempts) stop = "max-attempts";
        if (!stop && budget && !budget.canRetry()) stop = "budget";
        if (!stop) {
          const advice = serverDelay(err);
          if (advice?.stop) stop = "pushback";
          else if (advice) ({ delayMs, source: delaySource } = advice);
          else delayMs = config.backoff.delay(attempt);
        }
        if (!stop && overall && now + delayMs >= overall.at) stop = "deadline";
        if (stop) {
          const final = finalError(err, codes, overall);
          firstFailures.set(final, firstFailureAt);
          if (stop !== "not-retryable" && stop !== "cancelled") events?.report("retryStop", { method: method.path, attempts: final.attempts, reason: stop, error: final });
          throw final;
        }
        const event = { method: method.path, attempt, delayMs, delaySource, error: err };
        events?.report("retry", event);
        config.onRetry?.(event);
        try {
          await sleep(delayMs, signal);
        } catch {
          const cancelled = errorFromAbort(signal as AbortSignal, method.path, { idempotent, requestId: callOptions.requestId });
          throw cancelled.with({ attempts: codes.length, attemptCodes: codes });
        }
      }
    }
  };
}

interface ResolvedRetryConfig {
  maxAttempts: number;
  perAttemptTimeoutMs: number | undefined;
  backoff: ExponentialBackoff;
  onRetry: RetryOptions["onRetry"];
}

function pickRetryOptions(o: RetryOptions): RetryOptions {
  return {
    maxAttempts: o.maxAttempts,
    perAttemptTimeoutMs: o.perAttemptTimeoutMs,
    initialDelayMs: o.initialDelayMs,
    maxDelayMs: o.maxDelayMs,
    multiplier: o.multiplier,
    onRetry: o.onRetry,
  };
}

function resolveConfig(o: RetryOptions, random: (() => number) | undefined): ResolvedRetryConfig {
  const maxAttempts = o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new TypeError(`retry: maxAttempts must be an integer >= 1, got ${String(o.maxAttempts)}`);
  if (o.perAttemptTimeoutMs !== undefined && !(o.perAttemptTimeoutMs > 0)) {
    throw new TypeError(`retry: perAttemptTimeoutMs must be > 0, got ${String(o.perAttemptTimeoutMs)}`);
  }
  return { maxAttempts, perAttemptTimeoutMs: o.perAttemptTimeoutMs, backoff: new ExponentialBackoff(o, random), onRetry: o.onRetry };
}

/** The one deadline that spans every attempt: the caller's, else the pool default when known. */
function overallDeadline(options: CallOptions, requestTimeoutMs: number | undefined, now: number): ReturnType<typeof effectiveDeadline> | undefined {
  if (requestTimeoutMs === undefined && options.timeoutMs === undefined && options.deadline === undefined) return undefined;
  return effectiveDeadline(options, requestTimeoutMs ?? Number.MAX_SAFE_INTEGER / 2, now);
}

function finalError(err: RpcError, codes: Status[], overall: ReturnType<typeof effectiveDeadline> | undefined): RpcError {
  // Attempts ran under an absolute deadline; report the limit the caller actually set.
  const overallFired = err.category === "timeout" && err.timeoutKind === "context" && overall !== undefined && overall.kind !== "context";
  return err.with({ attempts: codes.length, attemptCodes: codes, ...(overallFired ? { timeoutKind: overall.kind } : {}) });
}
