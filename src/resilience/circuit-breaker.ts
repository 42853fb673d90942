import type { CircuitState } from "./events";

/** When a circuit opens and how long it stays open. */
export interface CircuitBreakerOptions {
  /** Failures in a row that open the circuit (0: off). Default 5. */
  consecutiveFailures?: number;
  /** Failure ratio over `windowMs` that opens the circuit (0: off). Default 0.5. */
  failureRatio?: number;
  /** Calls the window must hold before the ratio counts. Default 10. */
  minimumCalls?: number;
  /** Length of the sliding window for the ratio. Default 10000. */
  windowMs?: number;
  /** How long the circuit stays open before letting a probe through. Default 5000. */
  halfOpenAfterMs?: number;
}

const BUCKETS = 10;

/**
 * One circuit: `closed` → (N failures in a row, or failure ratio ≥ threshold over a sliding window)
 * → `open` for `halfOpenAfterMs` → `half-open`, where exactly one probe is let through: its success
 * closes the circuit, its failure opens it again. The caller decides what a failure is.
 * An operator can hold it open (`isolate()`, the `isolated` state, as cockatiel's and Polly's
 * isolate: no call through, no timer, no outcome moves it) and force it closed (`close()`).
 */
export class CircuitBreaker {
  private stateValue: CircuitState = "closed";
  private consecutive = 0;
  private probing = false;
  private timer: NodeJS.Timeout | undefined;
  private openedAt = 0;
  private readonly buckets: { start: number; calls: number; failures: number }[] = [];
  readonly consecutiveFailures: number;
  readonly failureRatio: number;
  readonly minimumCalls: number;
  readonly windowMs: number;
  readonly halfOpenAfterMs: number;

  constructor(
    options: CircuitBreakerOptions,
    private readonly onChange: (from: CircuitState, to: CircuitState, reason: string) => void,
  ) {
    this.consecutiveFailures = check("consecutiveFailures", options.consecutiveFailures ?? 5, 0, Infinity, true);
    this.failureRatio = check("failureRatio", options.failureRatio ?? 0.5, 0, 1, false);
    this.minimumCalls = check("minimumCalls", options.minimumCalls ?? 10, 1, Infinity, true);
    this.windowMs = check("windowMs", options.windowMs ?? 10_000, 1, Infinity, false);
    this.halfOpenAfterMs = check("halfOpenAfterMs", options.halfOpenAfterMs ?? 5000, 0, Infinity, false);
  }

  /** The current state. */
  get state(): CircuitState {
    return this.stateValue;
  }

  /** Milliseconds until an open circuit half-opens (0 when not open). */
  get remainingOpenMs(): number {
    return this.stateValue === "open" ? Math.max(0, this.openedAt + this.halfOpenAfterMs - Date.now()) : 0;
  }

  /** True when a probe is out in the half-open state. */
  get probeInFlight(): boolean {
    return this.probing;
  }

  /**
   * Asks to send a call: true when closed; in half-open, true once (that call is the probe).
   * A call let through must end in exactly one of `onSuccess`, `onFailure` or `onNeutral`.
   */
  tryAcquire(): boolean {
    if (this.stateValue === "closed") return true;
    if (this.stateValue === "half-open" && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  /** The call succeeded (or failed in a way that says nothing against this circuit). */
  onSuccess(): void {
    this.record(false);
    this.consecutive = 0;
    if (this.stateValue === "half-open") {
      this.probing = false;
      this.transition("closed", "probe succeeded");
      this.buckets.length = 0;
    }
  }

  /** The call failed in a way that counts against this circuit. */
  onFailure(): void {
    this.record(true);
    this.consecutive += 1;
    if (this.stateValue === "half-open") {
      this.probing = false;
      this.open("probe failed");
      return;
    }
    if (this.stateValue !== "closed") return;
    if (this.consecutiveFailures > 0 && this.consecutive >= this.consecutiveFailures) {
      this.open(`${this.consecutive} failures in a row`);
      return;
    }
    const { calls, failures } = this.window();
    if (this.failureRatio > 0 && calls >= this.minimumCalls && failures / calls >= this.failureRatio) {
      this.open(`${failures} of ${calls} calls failed in ${this.windowMs} ms`);
    }
  }

  /** The call ended without a verdict (cancelled by its caller): a probe slot is freed for another call. */
  onNeutral(): void {
    if (this.stateValue === "half-open") this.probing = false;
  }

  /** Holds the circuit open until `close()` (from any state; calls still running settle without effect). */
  isolate(reason = "isolated by an operator"): void {
    clearTimeout(this.timer);
    this.probing = false;
    this.transition("isolated", reason);
  }

  /** Forces the circuit closed, from any state (an isolated one included), and forgets its failures. */
  close(reason = "closed by an operator"): void {
    clearTimeout(this.timer);
    this.probing = false;
    this.consecutive = 0;
    this.buckets.length = 0;
    this.transition("closed", reason);
  }

  /** Stops the half-open timer (the owner is going away). */
  dispose(): void {
    clearTimeout(this.timer);
  }

  private open(reason: string): void {
    this.openedAt = Date.now();
    this.transition("open", reason);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.stateValue === "open") this.transition("half-open", `open for ${this.halfOpenAfterMs} ms`);
    }, this.halfOpenAfterMs);
    this.timer.unref();
  }

  private transition(to: CircuitState, reason: string): void {
    const from = this.stateValue;
    if (from === to) return;
    this.stateValue = to;
    this.onChange(from, to, reason);
  }

  private record(failed: boolean): void {
    const now = Date.now();
    const size = this.windowMs / BUCKETS;
    let last = this.buckets[this.buckets.length - 1];
    if (!last || now - last.start >= size) {
      last = { start: now, calls: 0, failures: 0 };
      this.buckets.push(last);
    }
    last.calls += 1;
    if (failed) last.failures += 1;
    while (this.buckets.length > 0 && now - this.buckets[0].start >= this.windowMs) this.buckets.shift();
  }

  private window(): { calls: number; failures: number } {
    let calls = 0;
    let failures = 0;
    for (const b of this.buckets) {
      calls += b.calls;
      failures += b.failures;
    }
    return { calls, failures };
  }
}

function check(name: string, value: number, min: number, max: number, integer: boolean): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < min || value > max || (integer && Number.isFinite(value) && !Number.isInteger(value))) {
    throw new TypeError(`circuit breaker: ${name} must be ${integer ? "an integer" : "a number"} between ${min} and ${max}, got ${String(value)}`);
  }
  return value;
}
