import { MAX_TIMER_MS } from "../core/deadline";

/**
 * The deadlines of many calls behind one timer, armed for the earliest (a binary min-heap of
 * epoch-ms times). It replaces a `setTimeout` + `clearTimeout` per call on the pipelined
 * transport, where most calls finish long before their deadline. A finished call is not taken
 * out of the heap (`remove` only forgets it); stale entries are dropped when they reach the top,
 * and the heap is rebuilt when they outnumber the live ones, so memory stays bounded by the
 * calls in flight. `onExpired(key)` runs for each live key whose time has come, never
 * synchronously from `add`. The timer is unref'd.
 */
export class DeadlineQueue<K> {
  private times: number[] = [];
  private keys: K[] = [];
  private readonly live = new Map<K, number>();
  private timer: NodeJS.Timeout | undefined;
  /** The time the timer is armed for (Infinity: not armed). */
  private armedAt = Infinity;

  constructor(private readonly onExpired: (key: K) => void) {}

  /** Calls `onExpired(key)` at epoch time `at` unless `remove(key)` comes first. */
  add(key: K, at: number): void {
    this.live.set(key, at);
    this.push(at, key);
    if (at < this.armedAt) this.arm();
  }

  /**
   * Forgets `key` (its call finished); its entry is dropped lazily. The last key's removal drops
   * every entry but leaves the timer armed: the next call's deadline is usually later, so one
   * call after another needs no `setTimeout` and `clearTimeout` each; the timer then fires once
   * on nothing (it is unref'd: it keeps no process alive).
   */
  remove(key: K): void {
    if (!this.live.delete(key)) return;
    if (this.live.size === 0) {
      this.times = [];
      this.keys = [];
    } else if (this.times.length > 64 && this.times.length > 2 * this.live.size) {
      this.rebuild();
    }
  }

  /** Stops the timer and forgets every key. */
  clear(): void {
    this.live.clear();
    this.times = [];
    this.keys = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
  }

  /** Entries held (live and stale), for tests. */
  get size(): number {
    return this.times.length;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    this.dropStale();
    if (this.times.length === 0) return;
    const at = this.times[0];
    const wait = at - Date.now();
    this.armedAt = at;
    // Further than a Node timer can wait: wake up at its limit and look again.
    // Unref'd: while calls wait, their connection keeps the process alive.
    this.timer = setTimeout(() => this.fire(), Math.min(MAX_TIMER_MS, Math.max(0, wait)));
    this.timer.unref?.();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = Date.now();
    const due: K[] = [];
    while (this.times.length > 0 && this.times[0] <= now) {
      const key = this.keys[0];
      const at = this.times[0];
      this.pop();
      if (this.live.get(key) === at) {
        this.live.delete(key);
        due.push(key);
      }
    }
    // Re-armed before the callbacks run, which may add or remove keys.
    this.arm();
    for (const key of due) this.onExpired(key);
  }

  private dropStale(): void {
    while (this.times.length > 0 && this.live.get(this.keys[0]) !== this.times[0]) this.pop();
  }

  private rebuild(): void {
    const entries = [...this.live];
    this.times = [];
    this.keys = [];
    for (const [key, at] of entries) this.push(at, key);
  }

  private push(at: number, key: K): void {
    const times = this.times;
    const keys = this.keys;
    let i = times.length;
    times.push(at);
    keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent] <= at) break;
      times[i] = times[parent];
      keys[i] = keys[parent];
      i = parent;
    }
    times[i] = at;
    keys[i] = key;
  }

  private pop(): void {
    const times = this.times;
    const keys = this.keys;
    const lastAt = times.pop() as number;
    const lastKey = keys.pop() as K;
    const n = times.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && times[child + 1] < times[child]) child++;
      if (times[child] >= lastAt) break;
      times[i] = times[child];
      keys[i] = keys[child];
      i = child;
    }
    times[i] = lastAt;
    keys[i] = lastKey;
  }
}
