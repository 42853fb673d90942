import type { WorkerFilter } from "../call/interceptor";
import { errorFromAbort } from "../core/cancellation";
import { atTime, type EffectiveDeadline } from "../core/deadline";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";
import type { CallTarget, Lease } from "../transport/call-target";
import { SlotQueue, type Waiter } from "./slot-queue";
import type { WorkerState } from "./worker-state";

/** What admission needs of a worker process. */
export interface AdmissionWorker extends CallTarget {
  readonly state: WorkerState;
  /** Calls holding a lease on this worker now. */
  inFlight: number;
  /** Calls this worker has finished. */
  served: number;
}

/** One call asking for a worker. */
export interface AdmissionRequest {
  method: string;
  requestId: string;
  idempotent: boolean;
  deadline: EffectiveDeadline;
  signal: AbortSignal | undefined;
  /** Workers to use only when no other ready worker has room (a retry after a failure there). */
  avoid?: ReadonlySet<string>;
  /** Workers never to use (open circuit breakers). */
  exclude?: WorkerFilter;
}

/** What admission needs of its pool. */
export interface AdmissionHost<W extends AdmissionWorker> {
  /** The workers that may take calls, in a stable order. */
  workers(): readonly W[];
  /** A lease on `worker`; `release` runs once when it is given back. */
  lease(worker: W, release: () => void): Lease;
  /** A call on `worker` finished (its lease was released). */
  released(worker: W): void;
  /** A call that had to queue got a worker after `waitedMs`. */
  dequeued(event: { method: string; workerId: string; waitedMs: number }): void;
  /** A call was refused because `maxQueue` calls were waiting. */
  queueFull(event: { method: string; maxQueue: number }): void;
  /** A call joined the queue (an autoscaler may add a worker). */
  queuedCall?(): void;
  /**
   * True while a worker the pool started to add capacity (a cold start, e.g. from zero) is on its
   * way: a call waiting with no worker ready keeps waiting past `waitForReadyMs` for it.
   */
  coldStarting?(): boolean;
}

/** Admission limits. */
export interface AdmissionLimits {
  maxInFlightPerWorker: number;
  maxQueue: number;
  waitForReadyMs: number;
}

/**
 * Admission for a local pool: a call gets a lease on the ready worker with the fewest calls in
 * flight, never above `maxInFlightPerWorker`; otherwise it waits in a bounded FIFO queue until
 * capacity frees up, its deadline passes, its signal fires, or (when no worker is ready at all)
 * `waitForReadyMs` passes. Every lease is released exactly once, and releasing hands the freed
 * capacity to the oldest waiter that accepts the worker.
 */
export class Admission<W extends AdmissionWorker> {
  private readonly queue: SlotQueue<Lease>;
  private rotation = 0;
  private leased = 0;

  constructor(
    private readonly host: AdmissionHost<W>,
    private readonly limits: AdmissionLimits,
  ) {
    this.queue = new SlotQueue(limits.maxQueue);
  }

  /** Calls waiting now. */
  get queued(): number {
    return this.queue.length;
  }

  /** Calls holding a lease now, on every worker. */
  get inFlight(): number {
    return this.leased;
  }

  /** When the oldest waiting call joined (`performance.now()` time), or undefined. */
  oldestQueuedAt(): number | undefined {
    return this.queue.oldestQueuedAt();
  }

  /** A lease at once when a worker has room; otherwise a promise of one (or of the reason there is none). */
  acquire(request: AdmissionRequest): Lease | Promise<Lease> {
    const worker = this.pick(request.avoid, request.exclude);
    if (worker) return this.leaseOn(worker);
    return this.wait(request);
  }

  /** Capacity may be free on `worker` (it became ready, or a call on it ended): hand it to waiters, oldest first. */
  offer(worker: W): void {
    while (this.queue.length > 0 && worker.state === "ready" && worker.inFlight < this.limits.maxInFlightPerWorker) {
      const waiter = this.queue.shiftFor(worker.id);
      if (!waiter) return;
      waiter.grant(this.leaseOn(worker));
    }
  }

  /** Fails every waiting call with `err` (shutdown). */
  failWaiting(err: Error): void {
    this.queue.drain(err);
  }

  private leaseOn(worker: W): Lease {
    worker.inFlight += 1;
    this.leased += 1;
    return this.host.lease(worker, () => {
      worker.inFlight -= 1;
      this.leased -= 1;
      worker.served += 1;
      this.offer(worker);
      this.host.released(worker);
    });
  }

  /** The least-loaded ready worker with room, preferring those not in `avoid`; never one in `exclude`. */
  private pick(avoid: ReadonlySet<string> | undefined, exclude: WorkerFilter | undefined): W | undefined {
    const workers = this.host.workers();
    const n = workers.length;
    if (n === 0) return undefined;
    const max = this.limits.maxInFlightPerWorker;
    let best: W | undefined;
    let fallback: W | undefined;
    // Start the scan at a rotating index so that ties spread over workers.
    const start = this.rotation++ % n;
    for (let i = 0; i < n; i++) {
      const w = workers[(start + i) % n];
      if (w.state !== "ready" || w.inFlight >= max || exclude?.has(w.id)) continue;
      if (avoid?.has(w.id)) {
        if (!fallback || w.inFlight < fallback.inFlight) fallback = w;
      } else if (!best || w.inFlight < best.inFlight) {
        best = w;
      }
    }
    return best ?? fallback;
  }

  private wait(request: AdmissionRequest): Promise<Lease> {
    const { method, signal, deadline, idempotent, requestId, exclude } = request;
    if (signal?.aborted) return Promise.reject(errorFromAbort(signal, { method, requestId, idempotent, reachedWorker: false }));
    const anyReady = this.host.workers().some((w) => w.state === "ready" && !exclude?.has(w.id));
    return new Promise<Lease>((resolve, reject) => {
      const queuedAt = performance.now();
      let cancelTimer: () => void = () => undefined;
      const cleanup = (): void => {
        cancelTimer();
        signal?.removeEventListener("abort", onAbort);
        this.queue.remove(waiter);
      };
      const waiter: Waiter<Lease> = {
        grant: (lease) => {
          cleanup();
          this.host.dequeued({ method, workerId: lease.target.id, waitedMs: performance.now() - queuedAt });
          resolve(lease);
        },
        fail: (err) => {
          cleanup();
          reject(err);
        },
        excludes: exclude,
      };
      const onAbort = (): void => waiter.fail(errorFromAbort(signal as AbortSignal, { method, requestId, idempotent, reachedWorker: false }));
      if (!this.queue.push(waiter)) {
        this.host.queueFull({ method, maxQueue: this.limits.maxQueue });
        reject(new RpcError({ code: Status.RESOURCE_EXHAUSTED, details: `pool queue is full (${this.limits.maxQueue} calls waiting)`, category: "lifecycle", method, requestId, reachedWorker: false }));
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      const arm = (readyBy: number): void => {
        if (readyBy < deadline.at) {
          cancelTimer = atTime(readyBy, () => {
            // A worker started for capacity is on its way (a cold start): wait another round for it.
            if (this.host.coldStarting?.()) arm(Date.now() + this.limits.waitForReadyMs);
            else waiter.fail(new RpcError({ code: Status.UNAVAILABLE, details: `no healthy workers available (waited ${Math.round(performance.now() - queuedAt)} ms)`, category: "lifecycle", method, requestId, reachedWorker: false }));
          });
        } else {
          cancelTimer = atTime(deadline.at, () =>
            waiter.fail(new RpcError({ code: Status.DEADLINE_EXCEEDED, details: "deadline exceeded while waiting for a free worker", category: "timeout", timeoutKind: deadline.kind, method, requestId, reachedWorker: false, idempotent })),
          );
        }
      };
      arm(anyReady ? Infinity : Date.now() + this.limits.waitForReadyMs);
      this.host.queuedCall?.();
    });
  }
}
