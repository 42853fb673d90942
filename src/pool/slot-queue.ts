/** A call waiting for a worker slot. */
export interface Waiter<T> {
  grant(slot: T): void;
  fail(err: Error): void;
  /** Workers this waiter must not be given (a worker circuit breaker's open workers). */
  excludes?: { has(workerId: string): boolean };
}

/**
 * FIFO of calls waiting for a worker slot, bounded by `max`. Each waiter leaves by being
 * granted a slot, failing (deadline, signal), or being drained at shutdown.
 */
export class SlotQueue<T> {
  private readonly waiters: Waiter<T>[] = [];
  /** `performance.now()` when each waiter joined, for the queue-age gauge. */
  private readonly joinedAt = new Map<Waiter<T>, number>();

  constructor(private readonly max: number) {}

  /** Calls waiting now. */
  get length(): number {
    return this.waiters.length;
  }

  /** Adds a waiter; false when the queue is full. */
  push(waiter: Waiter<T>): boolean {
    if (this.waiters.length >= this.max) return false;
    this.waiters.push(waiter);
    this.joinedAt.set(waiter, performance.now());
    return true;
  }

  /** When the oldest waiter joined (`performance.now()` time), or undefined when empty. */
  oldestQueuedAt(): number | undefined {
    return this.waiters.length > 0 ? this.joinedAt.get(this.waiters[0]) : undefined;
  }

  /** Removes a waiter that gave up (deadline or signal). */
  remove(waiter: Waiter<T>): void {
    const i = this.waiters.indexOf(waiter);
    if (i !== -1) this.waiters.splice(i, 1);
    this.joinedAt.delete(waiter);
  }

  /** The oldest waiter that accepts worker `workerId` (see `Waiter.excludes`), removed from the queue. */
  shiftFor(workerId: string): Waiter<T> | undefined {
    const i = this.waiters.findIndex((w) => !w.excludes?.has(workerId));
    if (i === -1) return undefined;
    const [waiter] = this.waiters.splice(i, 1);
    this.joinedAt.delete(waiter);
    return waiter;
  }

  /** Fails every waiter with `err`. */
  drain(err: Error): void {
    this.joinedAt.clear();
    for (const w of this.waiters.splice(0)) w.fail(err);
  }
}
