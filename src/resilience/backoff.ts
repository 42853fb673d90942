/** Exponential backoff settings; every field has a documented default. */
export interface BackoffOptions {
  /** Upper bound of the first delay. Default 100. */
  initialDelayMs?: number;
  /** No delay bound grows past this. Default 2000. */
  maxDelayMs?: number;
  /** Growth of the bound per retry. Default 2. */
  multiplier?: number;
}

/** Default backoff: bounds 100, 200, 400, … ms, capped at 2 s. */
export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialDelayMs: 100, maxDelayMs: 2000, multiplier: 2 };

/**
 * Exponential backoff with full jitter (the AWS architecture blog's "full jitter"): the delay
 * before retry `n` (1-based) is uniform in `[0, min(maxDelayMs, initialDelayMs * multiplier^(n-1))]`.
 * Full jitter spreads retries of many callers that failed together, so they do not return in a wave.
 */
export class ExponentialBackoff {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;

  constructor(options: BackoffOptions = {}, private readonly random: () => number = Math.random) {
    this.initialDelayMs = nonNegative("initialDelayMs", options.initialDelayMs ?? DEFAULT_BACKOFF.initialDelayMs);
    this.maxDelayMs = nonNegative("maxDelayMs", options.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs);
    this.multiplier = options.multiplier ?? DEFAULT_BACKOFF.multiplier;
    if (!Number.isFinite(this.multiplier) || this.multiplier < 1) {
      throw new TypeError(`backoff: multiplier must be a number >= 1, got ${String(options.multiplier)}`);
    }
  }

  /** The upper bound of the delay before retry `retry` (1-based). */
  bound(retry: number): number {
    return Math.min(this.maxDelayMs, this.initialDelayMs * this.multiplier ** Math.max(0, retry - 1));
  }

  /** A delay for retry `retry` (1-based), uniform in `[0, bound(retry)]`, whole milliseconds. */
  delay(retry: number): number {
    return Math.floor(this.random() * (this.bound(retry) + 1));
  }
}

function nonNegative(name: string, value: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`backoff: ${name} must be a finite number >= 0, got ${String(value)}`);
  }
  return value;
}
