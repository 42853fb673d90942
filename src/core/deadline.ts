import type { TimeoutKind } from "./categories";

/** When a call must end (epoch ms) and which limit set it. */
export interface EffectiveDeadline {
  readonly at: number;
  readonly kind: TimeoutKind;
}

/** The limits a call may set (a subset of the call options). */
export interface DeadlineOptions {
  timeoutMs?: number;
  deadline?: Date | number;
}

/**
 * Absolute deadlines given as numbers are epoch milliseconds. A number this small (before
 * 2001-09-09) is taken for a mistake: most likely "milliseconds from now" as nice-grpc's
 * deadline option means it, which is `timeoutMs` here.
 */
const EARLIEST_EPOCH_DEADLINE_MS = 1e12;

/** The longest delay a Node timer takes as given (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Throws a `RangeError` naming the option when `timeoutMs` or `deadline` cannot mean a point in
 * time: NaN, negative or infinite `timeoutMs`, an invalid `Date`, a non-finite number, or a
 * number too small to be an epoch time. Zero and past deadlines are valid: such calls fail at
 * once with DEADLINE_EXCEEDED without reaching a worker.
 */
export function checkDeadlineOptions(options: DeadlineOptions | undefined): void {
  if (!options) return;
  const { timeoutMs, deadline } = options;
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs < 0)) {
    throw new RangeError(`timeoutMs must be a finite number of milliseconds >= 0, got ${String(timeoutMs)}`);
  }
  if (deadline === undefined) return;
  if (deadline instanceof Date) {
    if (Number.isNaN(deadline.getTime())) throw new RangeError("deadline is an invalid Date");
    return;
  }
  if (typeof deadline !== "number" || !Number.isFinite(deadline)) {
    throw new RangeError(`deadline must be a Date or epoch milliseconds, got ${String(deadline)}`);
  }
  if (deadline < EARLIEST_EPOCH_DEADLINE_MS) {
    throw new RangeError(
      `deadline ${deadline} is an absolute time in epoch milliseconds (that is ${new Date(deadline).toISOString()}); for milliseconds from now use timeoutMs`,
    );
  }
}

/**
 * The deadline of a call: the earliest of its own `timeoutMs` (kind `per-call`) and `deadline`
 * (kind `context`) when it sets either; otherwise `defaultTimeoutMs` from now (kind
 * `transport`). A call's own limit replaces the default, so it may be longer or shorter.
 * Options must have passed `checkDeadlineOptions`.
 */
export function effectiveDeadline(options: DeadlineOptions | undefined, defaultTimeoutMs: number, now = Date.now()): EffectiveDeadline {
  const timeoutMs = options?.timeoutMs;
  const deadline = options?.deadline;
  if (timeoutMs === undefined && deadline === undefined) return { at: now + defaultTimeoutMs, kind: "transport" };
  let at = Infinity;
  let kind: TimeoutKind = "per-call";
  if (timeoutMs !== undefined) at = now + timeoutMs;
  if (deadline !== undefined) {
    const d = typeof deadline === "number" ? deadline : deadline.getTime();
    if (d <= at) {
      at = d;
      kind = "context";
    }
  }
  return { at, kind };
}

/**
 * Runs `fn` at epoch time `at` (never synchronously), even when that is further away than a
 * Node timer can wait: the timer is re-armed. Returns the function that cancels it.
 */
export function atTime(at: number, fn: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const wait = at - Date.now();
    timer = wait > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fn, Math.max(0, wait));
  };
  arm();
  return () => clearTimeout(timer);
}
