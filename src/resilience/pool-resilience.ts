import type { Interceptor } from "../call/interceptor";
import type { Logger } from "../core/logger";
import type { CircuitState, ResilienceEvents } from "./events";
import { fallbackMiddleware, type FallbackCallOptions, type FallbackFunction } from "./fallback";
import { hedgingMiddleware, type HedgeCallOptions, type HedgeOptions } from "./hedging";
import { KillSwitch } from "./kill-switch";
import { methodBreaker, type MethodBreaker, type MethodBreakerOptions } from "./method-breaker";
import { RetryBudget, type RetryBudgetOptions } from "./retry-budget";
import { retryMiddleware } from "./retry-middleware";
import type { RetryCallOptions, RetryOptions } from "./retry-policy";
import { workerBreaker, type WorkerBreaker, type WorkerBreakerOptions } from "./worker-breaker";

/** The pool's retry settings: `RetryOptions` plus the pool-wide retry budget. */
export interface PoolRetryOptions extends RetryOptions {
  /** Retry throttling shared by every call of the pool; `false` disables it. Default `{ maxTokens: 10, tokenRatio: 0.1 }`. */
  budget?: RetryBudgetOptions | false;
}

/** The call options the built-in resilience interceptors read. */
export type ResilienceCallOptions = RetryCallOptions & HedgeCallOptions & FallbackCallOptions;

/** Resilience options of `new WorkerPool(...)` / `new RemotePool(...)`; the pool builds its built-in interceptors from them. */
export interface PoolResilienceOptions {
  /**
   * Retries for every call (`true`: the defaults). Default `false`: a call is retried only when its
   * client (`defaults.retry`) or its own options (`retry`) ask. See docs/resilience.md.
   */
  retry?: PoolRetryOptions | boolean;
  /** Hedge every call of a NO_SIDE_EFFECTS method with these settings (`true`: the defaults). Default `false`: hedging only when a call asks. */
  hedge?: HedgeOptions | boolean;
  /** Circuit breakers, both opt-in: per worker (`workers`) and per method (`methods`); `true` takes the defaults. */
  circuitBreaker?: {
    workers?: WorkerBreakerOptions | boolean;
    methods?: MethodBreakerOptions | boolean;
  };
  /** Fallbacks by method path (`/pkg.Service/Method`); per-client `methods.x.fallback` and per-call `fallback` win. */
  fallbacks?: Readonly<Record<string, FallbackFunction>>;
}

/** The circuits of a pool's breakers, as `health()` reports them. */
export interface CircuitsHealth {
  /** Method circuits by path (only methods called since the breaker was enabled). */
  methods: Record<string, CircuitState>;
  /** Worker circuits by worker id. */
  workers: Record<string, CircuitState>;
}

/** The pool's built-in resilience interceptors and the parts a caller can inspect. */
export interface PoolResilience {
  /** Outermost first: fallback → kill switch → retry (with budget) → method breaker → hedging → worker breaker. */
  readonly interceptors: readonly Interceptor<ResilienceCallOptions>[];
  /** Methods and services switched off at run time (always present; empty until used). */
  readonly killSwitch: KillSwitch;
  readonly workerBreaker: WorkerBreaker | undefined;
  readonly methodBreaker: MethodBreaker | undefined;
  /** The breakers' circuits now (empty maps without breakers). */
  circuits(): CircuitsHealth;
  /** Stops the breakers' timers (the pool is shutting down). */
  dispose(): void;
}

/**
 * Builds the pool's resilience chain. The order is fixed and documented: a fallback sees the
 * final outcome; the kill switch refuses switched-off methods inside it (so a fallback can still
 * answer) and before anything that would retry or count them; retry spans attempts; the method breaker counts (and can refuse) each attempt;
 * hedging sends copies of one attempt; the worker breaker sees each copy on its worker.
 */
export function poolResilience(options: PoolResilienceOptions, context: { events: ResilienceEvents; logger: Logger; requestTimeoutMs: number }): PoolResilience {
  const { events, logger, requestTimeoutMs } = context;
  const retry = typeof options.retry === "object" ? options.retry : {};
  const hedge = typeof options.hedge === "object" ? options.hedge : {};
  const cb = options.circuitBreaker ?? {};
  const workers = cb.workers ? workerBreaker(cb.workers === true ? {} : cb.workers, events) : undefined;
  const methods = cb.methods ? methodBreaker(cb.methods === true ? {} : cb.methods, events) : undefined;
  // One budget for unary calls and stream openings alike: a retry storm is a retry storm.
  const budget: RetryBudget | false = retry.budget === false ? false : new RetryBudget(retry.budget ?? {});
  const killSwitch = new KillSwitch();
  const interceptors: Interceptor<ResilienceCallOptions>[] = [
    fallbackMiddleware({ methods: options.fallbacks, logger, events }),
    killSwitch.interceptor,
    retryMiddleware({ ...retry, budget, enabled: options.retry !== undefined && options.retry !== false, events, requestTimeoutMs }),
  ];
  if (methods) interceptors.push(methods.middleware);
  interceptors.push(hedgingMiddleware({ ...hedge, noSideEffectMethods: options.hedge !== undefined && options.hedge !== false, events }));
  if (workers) interceptors.push(workers.middleware);
  return {
    interceptors,
    killSwitch,
    workerBreaker: workers,
    methodBreaker: methods,
    circuits: () => ({ methods: methods?.states() ?? {}, workers: workers?.states() ?? {} }),
    dispose: () => {
      methods?.dispose();
      workers?.dispose();
    },
  };
}
