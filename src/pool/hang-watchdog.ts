import type { RunningHandler } from "../transport/worker-introspection";
import type { HangReason } from "./pool-events";

/** What the watchdog needs of a worker: whether it has exited. */
export interface WatchedWorker {
  readonly exit: unknown;
}

/** One unary call the watchdog follows, from admission to its handler's end on the worker. */
export interface WatchedCall<W extends WatchedWorker = WatchedWorker> {
  readonly worker: W;
  /** The pool's id of this attempt (`procgrpc-call-id`): what the worker's report is matched by. */
  readonly callId: string;
  /** The caller's request id, for the `workerHung` event and logs only (callers may reuse it). */
  readonly requestId: string;
  readonly method: string;
  readonly startedAt: number;
  /** When Node ended the call without an answer from the handler (deadline or signal). */
  cancelledAt: number | undefined;
}

/** How long an introspection call may take before the watchdog asks again on a later sweep. */
const PROBE_TIMEOUT_MS = 1000;
/** Clock slack when matching a worker's "running for N s" against Node's cancellation time. */
const MATCH_SLACK_MS = 100;

/**
 * Finds handlers that will not stop. grpc-js ends a call on the Node side the moment its deadline
 * passes or its signal fires, and the worker's server cancels it cooperatively
 * (`context.is_active()` turns false); but a `def` handler that ignores that keeps its thread.
 * So a cancelled call stays watched: once `cancelGraceMs` has passed, the watchdog asks the
 * worker which handlers are still executing (procgrpc.internal.v1.Worker/Running) and reports
 * the call if its handler is among them. A call still running in Node past `hardTimeoutMs` is
 * reported without asking. Reported workers are killed and replaced by the pool.
 */
export class HangWatchdog<W extends WatchedWorker = WatchedWorker> {
  private readonly calls = new Map<W, Set<WatchedCall<W>>>();
  private readonly probing = new Set<W>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * `ask(worker, deadline)` asks a worker which handlers are still executing
   * (procgrpc.internal.v1.Worker/Running); `onHang` reports a call whose handler will not stop.
   */
  constructor(
    private readonly cancelGraceMs: number,
    private readonly hardTimeoutMs: number,
    private readonly ask: (worker: W, deadline: Date) => Promise<RunningHandler[]>,
    private readonly onHang: (call: WatchedCall<W>, reason: HangReason, runningMs: number) => void,
  ) {}

  /** Starts the periodic sweep (a fraction of the shortest limit, between 20 and 500 ms). */
  start(): void {
    const limits = [this.cancelGraceMs, this.hardTimeoutMs].filter((ms) => ms > 0);
    const every = Math.max(20, Math.min(500, ...limits.map((ms) => ms / 4)));
    this.timer = setInterval(() => this.sweep(), every);
    this.timer.unref();
  }

  /** Stops sweeping and forgets every call. */
  stop(): void {
    clearInterval(this.timer);
    this.calls.clear();
  }

  /** Follows a call admitted to `worker`. */
  begin(worker: W, callId: string, requestId: string, method: string): WatchedCall<W> {
    const call: WatchedCall<W> = { worker, callId, requestId, method, startedAt: Date.now(), cancelledAt: undefined };
    let set = this.calls.get(worker);
    if (!set) this.calls.set(worker, (set = new Set()));
    set.add(call);
    return call;
  }

  /** The handler answered (any status): it has ended. */
  end(call: WatchedCall<W>): void {
    this.calls.get(call.worker)?.delete(call);
  }

  /** Node ended the call without the handler's answer; it may still be running. */
  cancelled(call: WatchedCall<W>): void {
    call.cancelledAt = Date.now();
  }

  /** The worker is gone: nothing to watch there. */
  forget(worker: W): void {
    this.calls.delete(worker);
    this.probing.delete(worker);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [worker, set] of this.calls) {
      if (set.size === 0 || worker.exit) {
        if (worker.exit || set.size === 0) this.calls.delete(worker);
        continue;
      }
      const due: WatchedCall<W>[] = [];
      let hung = false;
      for (const call of set) {
        const overHard = this.hardTimeoutMs > 0 && now - call.startedAt >= this.hardTimeoutMs;
        if (call.cancelledAt === undefined) {
          if (overHard) {
            this.onHang(call, "hard-timeout", now - call.startedAt);
            hung = true;
            break;
          }
        } else if (overHard || now - call.cancelledAt >= this.cancelGraceMs) {
          due.push(call);
        }
      }
      if (hung) {
        this.forget(worker);
      } else if (due.length > 0 && !this.probing.has(worker)) {
        void this.probe(worker, set, due);
      }
    }
  }

  private async probe(worker: W, set: Set<WatchedCall<W>>, due: WatchedCall<W>[]): Promise<void> {
    this.probing.add(worker);
    try {
      const running = await this.ask(worker, new Date(Date.now() + PROBE_TIMEOUT_MS));
      const now = Date.now();
      for (const call of due) {
        // The same attempt (call ids are the pool's, unique per attempt), running since before the cancellation.
        const still = running.find((h) => h.callId === call.callId && h.seconds * 1000 + MATCH_SLACK_MS >= now - (call.cancelledAt as number));
        if (still) {
          const overHard = this.hardTimeoutMs > 0 && now - call.startedAt >= this.hardTimeoutMs;
          this.onHang(call, overHard ? "hard-timeout" : "cancel-grace", now - call.startedAt);
          this.forget(worker);
          return;
        }
        set.delete(call);
      }
    } catch {
      // No answer: asked again on the next sweep; a worker that stopped answering is the health monitor's case.
    } finally {
      this.probing.delete(worker);
    }
  }
}
