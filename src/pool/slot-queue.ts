/** A call waiting for a worker slot. */
export interface Waiter<T> {
  grant(slot: T): void;
  fail(err: Error): void;
}

/**
 * FIFO of calls waiting for a worker slot, bounded by `max`. Each waiter leaves by being
 * granted a slot, failing (deadline, signal), or being drained at shutdown.
 */
export class SlotQueue<T> {
  private readonly waiters: Waiter<T>[] = [];

  constructor(private readonly max: number) {}

  /** Calls waiting now. */
  get length(): number {
    return this.waiters.length;
  }

  /** Adds a waiter; false when the queue is full. */
  push(waiter: Waiter<T>): boolean {
    if (this.waiters.length >= this.max) return false;
    this.waiters.push(waiter);
    return true;
  }

  /** Removes a waiter that gave up (deadline or signal). */
  remove(waiter: Waiter<T>): void {
    const i = this.waiters.indexOf(waiter);
    if (i !== -1) this.waiters.splice(i, 1);
  }

  /** The oldest waiter, removed from the queue. */
  shift(): Waiter<T> | undefined {
    return this.waiters.shift();
  }

  /** Fails every waiter with `err`. */
  drain(err: Error): void {
    for (const w of this.waiters.splice(0)) w.fail(err);
  }
}
