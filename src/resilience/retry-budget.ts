/** Settings of a `RetryBudget`; the defaults are gRPC's retry-throttling example. */
export interface RetryBudgetOptions {
  /** Size of the token bucket. Default 10. */
  maxTokens?: number;
  /** Tokens a success puts back. Default 0.1. */
  tokenRatio?: number;
}

/**
 * Retry throttling as gRPC specifies it (A6 "Retry Throttling"): a bucket starts with `maxTokens`
 * tokens; every failure that could be retried takes one, every success returns `tokenRatio`. Retries
 * are allowed only while more than half the tokens remain, so when most recent calls fail (a dying
 * worker set) the callers stop multiplying the load with retries, and resume as successes return.
 */
export class RetryBudget {
  readonly maxTokens: number;
  readonly tokenRatio: number;
  private tokens: number;

  constructor(options: RetryBudgetOptions = {}) {
    this.maxTokens = options.maxTokens ?? 10;
    this.tokenRatio = options.tokenRatio ?? 0.1;
    if (!(this.maxTokens > 0) || !Number.isFinite(this.maxTokens)) throw new TypeError(`retry budget: maxTokens must be > 0, got ${String(options.maxTokens)}`);
    if (!(this.tokenRatio > 0) || !Number.isFinite(this.tokenRatio)) throw new TypeError(`retry budget: tokenRatio must be > 0, got ${String(options.tokenRatio)}`);
    this.tokens = this.maxTokens;
  }

  /** Tokens left now. */
  get available(): number {
    return this.tokens;
  }

  /** Records a success: returns `tokenRatio` tokens (never above `maxTokens`). */
  onSuccess(): void {
    this.tokens = Math.min(this.maxTokens, this.tokens + this.tokenRatio);
  }

  /** Records a retryable failure: takes one token (never below 0). */
  onFailure(): void {
    this.tokens = Math.max(0, this.tokens - 1);
  }

  /** True while a retry may be made (more than half the bucket left). */
  canRetry(): boolean {
    return this.tokens > this.maxTokens / 2;
  }
}
