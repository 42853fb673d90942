import type { Interceptor } from "../call/interceptor";
import { RpcError } from "../core/rpc-error";
import { CircuitBreaker, type CircuitBreakerOptions } from "./circuit-breaker";
import type { CircuitState, ResilienceEvents } from "./events";
import { countsAgainstWorker } from "./failure-kinds";

/** Options of the per-worker circuit breaker (same knobs as `CircuitBreakerOptions`). */
export type WorkerBreakerOptions = CircuitBreakerOptions;

/** A per-worker circuit breaker as middleware, with its circuits for inspection. */
export interface WorkerBreaker {
  readonly middleware: Interceptor;
  /** The state of a worker's circuit (`closed` for one never used). */
  state(workerId: string): CircuitState;
  /** Every circuit used so far, by worker id. */
  states(): Record<string, CircuitState>;
  /** Ids of the workers out of rotation now (open or isolated, or half-open with its probe out). */
  excluded(): string[];
  /** Holds worker `workerId`'s circuit open (out of rotation) until `close(workerId)`. */
  isolate(workerId: string): void;
  /** Forces worker `workerId`'s circuit closed (back in rotation) and forgets its failures. */
  close(workerId: string): void;
  /** Stops the circuits' timers. */
  dispose(): void;
}

/**
 * Per-worker circuit breaking: connection failures and timeouts on a worker (never permanent
 * errors, which mean it answered) open its circuit, and the pool stops giving it calls
 * (`UnaryCall.excludeWorkers`) for `halfOpenAfterMs`; then the next call the pool gives it is the
 * probe, and its outcome closes or re-opens the circuit.
 */
export function workerBreaker(options: WorkerBreakerOptions = {}, events?: ResilienceEvents): WorkerBreaker {
  const circuits = new Map<string, CircuitBreaker>();
  // The live set the pool reads when it picks a worker.
  const out = new Set<string>();
  new CircuitBreaker(options, () => undefined); // validate once
  const circuitFor = (workerId: string): CircuitBreaker => {
    let circuit = circuits.get(workerId);
    if (!circuit) {
      circuit = new CircuitBreaker(options, (from, to, reason) => {
        if (to === "open" || to === "isolated") out.add(workerId);
        else out.delete(workerId);
        events?.report("circuitStateChange", { scope: "worker", key: workerId, from, to, reason });
      });
      circuits.set(workerId, circuit);
    }
    return circuit;
  };
  const excludeWorkers = { has: (id: string) => out.has(id) };
  const middleware: Interceptor = async (call, next) => {
    if (call.kind !== "unary") {
      // Streams keep off open workers too; their outcomes are not counted.
      const outer = call.excludeWorkers;
      return next({ ...call, excludeWorkers: outer ? { has: (id: string) => out.has(id) || outer.has(id) } : excludeWorkers });
    }
    let workerId: string | undefined;
    const outer = call.excludeWorkers;
    const onDispatch = (id: string): void => {
      workerId = id;
      const circuit = circuitFor(id);
      // In half-open, the first call the pool hands this worker is the probe; keep others off it.
      if (circuit.state === "half-open" && circuit.tryAcquire()) out.add(id);
      call.onDispatch?.(id);
    };
    const exclude = outer ? { has: (id: string) => out.has(id) || outer.has(id) } : excludeWorkers;
    try {
      const response = await next({ ...call, excludeWorkers: exclude, onDispatch });
      if (workerId) settle(workerId, "success");
      return response;
    } catch (thrown) {
      const err = RpcError.from(thrown, call.method.path);
      const id = err.workerId ?? workerId;
      if (id && (workerId !== undefined || err.reachedWorker)) {
        settle(id, countsAgainstWorker(err) ? "failure" : err.category === "cancelled" ? "neutral" : "success");
      }
      throw thrown;
    }
  };
  const settle = (id: string, outcome: "success" | "failure" | "neutral"): void => {
    const circuit = circuitFor(id);
    const wasProbe = circuit.state === "half-open" && circuit.probeInFlight;
    if (outcome === "success") circuit.onSuccess();
    else if (outcome === "failure") circuit.onFailure();
    else circuit.onNeutral();
    const now = circuit.state as CircuitState;
    if (wasProbe && now !== "open" && now !== "isolated") out.delete(id);
  };
  return {
    middleware,
    state: (id) => circuits.get(id)?.state ?? "closed",
    states: () => Object.fromEntries([...circuits].map(([id, c]) => [id, c.state])),
    excluded: () => [...out],
    isolate: (id) => circuitFor(id).isolate(),
    close: (id) => circuits.get(id)?.close(),
    dispose: () => circuits.forEach((c) => c.dispose()),
  };
}
