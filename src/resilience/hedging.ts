import type { Interceptor } from "../call/interceptor";
import { RpcError } from "../core/rpc-error";
import type { Status } from "../core/status";
import type { ResilienceEvents } from "./events";
import { RETRY_CODES } from "./retry-policy";

/** Hedging settings: on the pool (`hedge`, for NO_SIDE_EFFECTS methods) or per call. */
export interface HedgeOptions {
  /** How long to wait for an answer before sending the next copy. Default 100. */
  delayMs?: number;
  /** Copies in all, the first included. Default 2. */
  maxAttempts?: number;
}

/** The call option the hedging interceptor reads. */
export interface HedgeCallOptions {
  /** Hedging for this call (`false`: none; `true`: the pool's settings). Sending copies is only safe for calls without side effects. */
  hedge?: HedgeOptions | boolean;
}

/** Options of `hedgingMiddleware`. */
export interface HedgingMiddlewareOptions extends HedgeOptions {
  /** Hedge every call of a method marked NO_SIDE_EFFECTS without being asked per call. Default true. */
  noSideEffectMethods?: boolean;
  /** Where `hedge` and `hedgeSettled` events go. */
  events?: ResilienceEvents;
}

/** Why copies of a hedged call are cancelled. */
const LOST = "hedged call answered by another copy";

/**
 * Hedging: after `delayMs` without an answer the same call is sent again, to another worker; the
 * first answer wins and the other copies are cancelled through their AbortSignal (the worker sees
 * the cancellation: `context.is_active()` turns false). A copy failing with a transient code makes
 * the next copy go at once; any other failure ends the call. Only for calls without side effects:
 * methods marked NO_SIDE_EFFECTS, or calls whose caller asks with `hedge` in the call options.
 * Unary calls only; streams pass through.
 */
export function hedgingMiddleware(options: HedgingMiddlewareOptions = {}): Interceptor<HedgeCallOptions> {
  const { noSideEffectMethods = true, events } = options;
  const base = { delayMs: options.delayMs ?? 100, maxAttempts: options.maxAttempts ?? 2 };
  validate(base);
  return (call, next) => {
    if (call.kind !== "unary") return next(call);
    const setting = call.options.hedge;
    if (setting === false) return next(call);
    if (setting === undefined && !(noSideEffectMethods && call.method.idempotencyLevel === "NO_SIDE_EFFECTS")) return next(call);
    const config = typeof setting === "object" ? validate({ ...base, ...setting }) : base;
    if (config.maxAttempts < 2) return next(call);
    const path = call.method.path;
    const parent = call.options.signal;
    return new Promise<unknown>((resolve, reject) => {
      const copies: AbortController[] = [];
      const running = new Set<string>();
      const codes: Status[] = [];
      let outstanding = 0;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const onParentAbort = (): void => copies.forEach((c) => c.abort(parent?.reason));
      parent?.addEventListener("abort", onParentAbort, { once: true });
      const finish = (winner: number): number => {
        settled = true;
        clearTimeout(timer);
        parent?.removeEventListener("abort", onParentAbort);
        let cancelled = 0;
        copies.forEach((c, i) => {
          if (i + 1 !== winner && !c.signal.aborted && !done.has(i + 1)) {
            cancelled += 1;
            c.abort(new Error(LOST));
          }
        });
        if (copies.length > 1) events?.report("hedgeSettled", { method: path, winner, sent: copies.length, cancelled });
        return cancelled;
      };
      const done = new Set<number>();
      const launch = (): void => {
        clearTimeout(timer);
        const n = copies.length + 1;
        const controller = new AbortController();
        copies.push(controller);
        if (parent?.aborted) controller.abort(parent.reason);
        if (n > 1) events?.report("hedge", { method: path, attempt: n, runningOn: [...running] });
        outstanding += 1;
        const avoid = new Set([...(call.avoidWorkers ?? []), ...running]);
        next({
          ...call,
          options: { ...call.options, signal: controller.signal },
          avoidWorkers: avoid.size > 0 ? avoid : undefined,
          onDispatch: (id) => {
            running.add(id);
            call.onDispatch?.(id);
          },
        }).then(
          (response) => {
            outstanding -= 1;
            done.add(n);
            if (settled) return;
            finish(n);
            resolve(response);
          },
          (thrown: unknown) => {
            outstanding -= 1;
            done.add(n);
            if (settled) return;
            const err = RpcError.from(thrown, path);
            codes.push(...err.attemptCodes);
            const transient = err.category !== "cancelled" && RETRY_CODES.has(err.code()) && err.category !== "protocol";
            if (transient && copies.length < config.maxAttempts) {
              launch();
              return;
            }
            if (transient && outstanding > 0) return; // another copy may still answer
            finish(0);
            reject(err.with({ attempts: codes.length, attemptCodes: codes }));
          },
        );
        if (copies.length < config.maxAttempts) {
          timer = setTimeout(() => {
            if (!settled) launch();
          }, config.delayMs);
        }
      };
      launch();
    });
  };
}

function validate(o: { delayMs: number; maxAttempts: number }): { delayMs: number; maxAttempts: number } {
  if (typeof o.delayMs !== "number" || !Number.isFinite(o.delayMs) || o.delayMs < 0) throw new RangeError(`hedge: delayMs must be a number >= 0, got ${String(o.delayMs)}`);
  if (!Number.isInteger(o.maxAttempts) || o.maxAttempts < 1) throw new RangeError(`hedge: maxAttempts must be an integer >= 1, got ${String(o.maxAttempts)}`);
  return o;
}
