import type { BaseCallOptions } from "../call/call-options";
import type { Call, Interceptor, Next } from "../call/interceptor";
import { errorFromAbort } from "../core/cancellation";
import { checkDeadlineOptions, effectiveDeadline, type EffectiveDeadline } from "../core/deadline";
import { RpcError } from "../core/rpc-error";
import type { Status } from "../core/status";
import { ExponentialBackoff } from "./backoff";
import type { ResilienceEvents, RetryStopReason } from "./events";
import { RetryBudget, type RetryBudgetOptions } from "./retry-budget";
import { DEFAULT_MAX_ATTEMPTS, RETRY_CODES, retryVerdict, serverDelay, type RetryCallOptions, type RetryOptions } from "./retry-policy";
import { sleep } from "./sleep";

/** Options of `retryMiddleware`: the default `RetryOptions` plus what the interceptor shares between calls. */
export interface RetryMiddlewareOptions extends RetryOptions {
  /** Retry calls whose options say nothing about `retry`. Default true; the pool passes false unless its `retry` option is set. */
  enabled?: boolean;
  /** Retry throttling shared by every call through this interceptor; `false` disables it. Default `new RetryBudget()`. */
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
 * (`retryVerdict`), one overall deadline across attempts, the worker's RetryInfo / pushback, a
 * retry budget, and a different worker for each retry when another is ready. The final
 * `RpcError` has `attempts` and `attemptCodes`.
 *
 * Unary calls are retried whole. A server stream is retried up to its first message (or its
 * clean end): once a message has been delivered it is never repeated, since the caller would
 * see messages twice. Client and bidirectional streams are not retried: the caller's request
 * iterable cannot be replayed.
 */
export function retryMiddleware(options: RetryMiddlewareOptions = {}): Interceptor<RetryCallOptions> {
  const { enabled = true, events, requestTimeoutMs, random } = options;
  const budget = options.budget === false ? undefined : options.budget instanceof RetryBudget ? options.budget : new RetryBudget(options.budget ?? {});
  const base = pickRetryOptions(options);
  // Validate the defaults once, at construction.
  resolveConfig(base, random);
  return (call, next) => {
    if (call.kind === "client-stream" || call.kind === "bidi-stream") return next(call);
    const setting = call.options.retry;
    if (setting === false || (setting === undefined && !enabled)) return next(call);
    const config = resolveConfig(typeof setting === "object" ? { ...base, ...setting } : base, random);
    if (call.kind === "unary") return withRetries(call, config, (attempt) => next(attempt), { budget, events, requestTimeoutMs, streaming: false });
    return retryServerStream(call, next, config, { budget, events, requestTimeoutMs });
  };
}

interface Shared {
  budget: RetryBudget | undefined;
  events: ResilienceEvents | undefined;
  requestTimeoutMs: number | undefined;
}

/** Opens a server stream under the policy: an attempt is the opening and the first message. */
async function retryServerStream(call: Call<RetryCallOptions>, next: Next, config: ResolvedRetryConfig, shared: Shared): Promise<AsyncIterable<unknown>> {
  const opened = await withRetries(
    call,
    config,
    async (attempt) => {
      const iterator = ((await next(attempt)) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
      return { iterator, first: await iterator.next() };
    },
    { ...shared, streaming: true },
  );
  return afterFirst(opened.iterator, opened.first);
}

/** The rest of a stream after its first result; leaving early ends the underlying call. */
function afterFirst(iterator: AsyncIterator<unknown>, first: IteratorResult<unknown>): AsyncIterableIterator<unknown> {
  let pending: IteratorResult<unknown> | undefined = first;
  const it: AsyncIterableIterator<unknown> = {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (pending) {
        const r = pending;
        pending = r.done ? r : undefined;
        return r;
      }
      return iterator.next();
    },
    async return(value?: unknown) {
      pending = { done: true, value: undefined };
      await iterator.return?.(value);
      return { done: true, value: undefined };
    },
  };
  return it;
}

async function withRetries<T>(call: Call<RetryCallOptions>, config: ResolvedRetryConfig, attemptOnce: (attempt: Call) => Promise<T>, shared: Shared & { streaming: boolean }): Promise<T> {
  const { budget, events, requestTimeoutMs } = shared;
  const { method, options: callOptions } = call;
  const idempotent = method.idempotent || callOptions.idempotent === true;
  const start = Date.now();
  const overall = overallDeadline(callOptions, requestTimeoutMs, start);
  const signal = callOptions.signal;
  const avoid = new Set<string>(call.avoidWorkers ?? []);
  const codes: Status[] = [];
  let firstFailureAt: number | undefined;
  for (let attempt = 1; ; attempt++) {
    // The per-attempt timeout is about getting a stream going; a stream keeps the caller's own limits.
    const timeoutMs = shared.streaming ? callOptions.timeoutMs : config.perAttemptTimeoutMs;
    const attemptOptions: BaseCallOptions & RetryCallOptions = { ...callOptions, timeoutMs, deadline: overall?.at };
    try {
      const response = await attemptOnce({ ...call, options: attemptOptions, avoidWorkers: avoid.size > 0 ? avoid : undefined });
      budget?.onSuccess();
      return response;
    } catch (thrown) {
      const err = RpcError.from(thrown, method.path);
      const now = Date.now();
      firstFailureAt ??= now;
      codes.push(...err.attemptCodes);
      if (err.workerId) avoid.add(err.workerId);
      const verdict = retryVerdict(err, { idempotent, overallDeadlineAt: overall?.at, now, retryableCodes: config.retryableCodes });
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
        const cancelled = errorFromAbort(signal as AbortSignal, { method: method.path, idempotent, requestId: callOptions.requestId, reachedWorker: err.reachedWorker });
        throw cancelled.with({ attempts: codes.length, attemptCodes: codes });
      }
    }
  }
}

interface ResolvedRetryConfig {
  maxAttempts: number;
  perAttemptTimeoutMs: number | undefined;
  backoff: ExponentialBackoff;
  retryableCodes: ReadonlySet<Status>;
  onRetry: RetryOptions["onRetry"];
}

function pickRetryOptions(o: RetryOptions): RetryOptions {
  return {
    maxAttempts: o.maxAttempts,
    perAttemptTimeoutMs: o.perAttemptTimeoutMs,
    initialDelayMs: o.initialDelayMs,
    maxDelayMs: o.maxDelayMs,
    multiplier: o.multiplier,
    retryableCodes: o.retryableCodes,
    onRetry: o.onRetry,
  };
}

function resolveConfig(o: RetryOptions, random: (() => number) | undefined): ResolvedRetryConfig {
  const maxAttempts = o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new RangeError(`retry: maxAttempts must be an integer >= 1, got ${String(o.maxAttempts)}`);
  if (o.perAttemptTimeoutMs !== undefined && !(typeof o.perAttemptTimeoutMs === "number" && Number.isFinite(o.perAttemptTimeoutMs) && o.perAttemptTimeoutMs > 0)) {
    throw new RangeError(`retry: perAttemptTimeoutMs must be a finite number > 0, got ${String(o.perAttemptTimeoutMs)}`);
  }
  if (o.retryableCodes !== undefined && (!Array.isArray(o.retryableCodes) || o.retryableCodes.some((c) => !Number.isInteger(c) || c <= 0 || c > 16))) {
    throw new RangeError(`retry: retryableCodes must be an array of non-OK status codes, got ${JSON.stringify(o.retryableCodes)}`);
  }
  return {
    maxAttempts,
    perAttemptTimeoutMs: o.perAttemptTimeoutMs,
    backoff: new ExponentialBackoff(o, random),
    retryableCodes: o.retryableCodes ? new Set(o.retryableCodes) : RETRY_CODES,
    onRetry: o.onRetry,
  };
}

/** The one deadline that spans every attempt: the caller's, else the pool default when known. */
function overallDeadline(options: BaseCallOptions, requestTimeoutMs: number | undefined, now: number): EffectiveDeadline | undefined {
  if (requestTimeoutMs === undefined && options.timeoutMs === undefined && options.deadline === undefined) return undefined;
  checkDeadlineOptions(options);
  return effectiveDeadline(options, requestTimeoutMs ?? Number.MAX_SAFE_INTEGER / 2, now);
}

function finalError(err: RpcError, codes: Status[], overall: EffectiveDeadline | undefined): RpcError {
  // Attempts ran under an absolute deadline; report the limit the caller actually set.
  const overallFired = err.category === "timeout" && err.timeoutKind === "context" && overall !== undefined && overall.kind !== "context";
  return err.with({ attempts: codes.length, attemptCodes: codes, ...(overallFired ? { timeoutKind: overall.kind } : {}) });
}
