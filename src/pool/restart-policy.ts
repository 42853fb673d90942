import type { ResolvedRestartOptions } from "./options";

/** What the restart policy decided for one unexpected exit. */
export interface RestartDecision {
  /** How long to wait before respawning. */
  delayMs: number;
  /** Restarts inside the window, this one included. */
  restartsInWindow: number;
  /** More than `maxRestarts` inside `windowMs`: the worker is crash-looping (`failed`). */
  crashLoop: boolean;
}

/**
 * Respawn backoff for one worker slot: the n-th restart inside `windowMs` waits a random time
 * between half and all of `min(maxDelayMs, initialDelayMs × multiplier^(n-1))` ("equal jitter":
 * slots restarting together spread out, yet the wait still grows). More than `maxRestarts`
 * restarts inside the window is a crash loop: the wait is then the maximum, jittered the same way.
 * Restarts older than the window are forgotten, so a worker that has been stable starts over at
 * `initialDelayMs`.
 */
export class RestartPolicy {
  private readonly times: number[] = [];

  constructor(
    private readonly options: ResolvedRestartOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /** Records a restart at `now` and returns how long to wait before it. */
  next(now: number): RestartDecision {
    const { initialDelayMs, maxDelayMs, multiplier, maxRestarts, windowMs } = this.options;
    while (this.times.length > 0 && now - this.times[0] >= windowMs) this.times.shift();
    this.times.push(now);
    const n = this.times.length;
    const crashLoop = n > maxRestarts;
    const base = crashLoop ? maxDelayMs : Math.min(maxDelayMs, initialDelayMs * multiplier ** (n - 1));
    return { delayMs: Math.round(base / 2 + (this.random() * base) / 2), restartsInWindow: n, crashLoop };
  }
}
