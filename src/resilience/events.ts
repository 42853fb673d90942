import { EventEmitter } from "node:events";
import type { Logger } from "../core/logger";
import type { RpcError } from "../core/rpc-error";

/** Where a retry delay came from. */
export type DelaySource = "backoff" | "retry-info" | "pushback";

/** A retry is about to wait `delayMs` and then make attempt `attempt + 1`. */
export interface RetryEvent {
  method: string;
  /** The attempt that just failed (1-based). */
  attempt: number;
  delayMs: number;
  delaySource: DelaySource;
  error: RpcError;
}

/** Why the retry policy stopped and returned the last error. */
export type RetryStopReason = "not-retryable" | "unsafe" | "max-attempts" | "budget" | "deadline" | "pushback" | "cancelled";

/** The retry policy gave up on a call that had failed. */
export interface RetryStopEvent {
  method: string;
  attempts: number;
  reason: RetryStopReason;
  error: RpcError;
}

/**
 * A circuit's states: `closed` lets calls through, `open` rejects them, `half-open` lets a probe
 * through, `isolated` rejects them until an operator closes it (held open by hand).
 */
export type CircuitState = "closed" | "open" | "half-open" | "isolated";

/** A circuit changed state. `scope` says whether it guards a method (`key` is its path) or a worker (`key` is its id). */
export interface CircuitStateEvent {
  scope: "method" | "worker";
  key: string;
  from: CircuitState;
  to: CircuitState;
  /** Why: the failure count or ratio, `probe succeeded`, `probe failed`, or `half-open timer`. */
  reason: string;
}

/** An open method circuit rejected a call without sending it. */
export interface CircuitRejectEvent {
  method: string;
}

/** Hedging sent another copy of a call. */
export interface HedgeEvent {
  method: string;
  /** The copy just sent (2 for the first hedge). */
  attempt: number;
  /** Workers already running copies of the call. */
  runningOn: readonly string[];
}

/** A hedged call settled: which copy answered and how many others were cancelled. */
export interface HedgeSettledEvent {
  method: string;
  /** The copy whose answer was used (1-based), or 0 when every copy failed. */
  winner: number;
  sent: number;
  cancelled: number;
}

/** A fallback answered instead of the failed call. */
export interface FallbackEvent {
  method: string;
  /** The failure the fallback replaced. */
  error: RpcError;
}

/** A batch item failed for good and was written to the dead-letter store. */
export interface DeadLetterEvent {
  method: string;
  /** The dead letter's id in the store. */
  id: string;
  error: RpcError;
}

/** Every resilience event, by name (`pool.resilience.on(name, listener)`). */
export interface ResilienceEventMap {
  deadLetter: [DeadLetterEvent];
  retry: [RetryEvent];
  retryStop: [RetryStopEvent];
  circuitStateChange: [CircuitStateEvent];
  circuitReject: [CircuitRejectEvent];
  hedge: [HedgeEvent];
  hedgeSettled: [HedgeSettledEvent];
  fallback: [FallbackEvent];
}

/** Running totals of resilience events, for metrics. */
export interface ResilienceCounters {
  /** Retries made (attempts after the first). */
  retries: number;
  /** Calls on which the retry budget refused a retry. */
  retriesThrottled: number;
  /** Calls that failed after using every allowed attempt. */
  retriesExhausted: number;
  /** Circuits (method or worker) that opened. */
  circuitsOpened: number;
  /** Calls an open method circuit rejected. */
  circuitRejections: number;
  /** Hedge copies sent (beyond the first). */
  hedges: number;
  /** Hedge copies cancelled because another answered first. */
  hedgesCancelled: number;
  /** Calls answered by a fallback. */
  fallbacks: number;
  /** Batch items written to a dead-letter store. */
  deadLetters: number;
}

/**
 * The event hub the built-in resilience policies report to, with running counters. Every policy
 * takes one (each pool has its own as `pool.resilience`); observability turns them into metrics.
 */
export class ResilienceEvents extends EventEmitter<ResilienceEventMap> {
  private readonly totals: ResilienceCounters = {
    retries: 0,
    retriesThrottled: 0,
    retriesExhausted: 0,
    circuitsOpened: 0,
    circuitRejections: 0,
    hedges: 0,
    hedgesCancelled: 0,
    fallbacks: 0,
    deadLetters: 0,
  };

  /** `logger`: where a listener that throws is reported (the event still reaches the other listeners). */
  constructor(private readonly logger?: Logger) {
    super();
  }

  /** A snapshot of the counters. */
  counters(): ResilienceCounters {
    return { ...this.totals };
  }

  /**
   * Emits `name` and updates the counters; policies call this. A listener that throws never fails
   * the call it observes: its error is logged and the other listeners still run.
   */
  report<K extends keyof ResilienceEventMap>(name: K, ...args: ResilienceEventMap[K]): void {
    this.count(name, args[0] as ResilienceEventMap[keyof ResilienceEventMap][0]);
    for (const listener of this.rawListeners(name as never) as unknown as ((...a: unknown[]) => unknown)[]) {
      try {
        listener.apply(this, args);
      } catch (err) {
        this.logger?.error({ event: name, err: err instanceof Error ? err.message : String(err) }, "a resilience event listener threw");
      }
    }
  }

  private count(name: keyof ResilienceEventMap, event: ResilienceEventMap[keyof ResilienceEventMap][0]): void {
    switch (name) {
      case "retry":
        this.totals.retries += 1;
        break;
      case "retryStop": {
        const reason = (event as RetryStopEvent).reason;
        if (reason === "budget") this.totals.retriesThrottled += 1;
        if (reason === "max-attempts") this.totals.retriesExhausted += 1;
        break;
      }
      case "circuitStateChange":
        if ((event as CircuitStateEvent).to === "open") this.totals.circuitsOpened += 1;
        break;
      case "circuitReject":
        this.totals.circuitRejections += 1;
        break;
      case "hedge":
        this.totals.hedges += 1;
        break;
      case "hedgeSettled":
        this.totals.hedgesCancelled += (event as HedgeSettledEvent).cancelled;
        break;
      case "fallback":
        this.totals.fallbacks += 1;
        break;
      case "deadLetter":
        this.totals.deadLetters += 1;
        break;
    }
  }
}
