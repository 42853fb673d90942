import type { Interceptor } from "../call/interceptor";
import { RpcError } from "../core/rpc-error";
import { CircuitBreaker, type CircuitBreakerOptions } from "./circuit-breaker";
import { circuitOpenError } from "./circuit-open-error";
import type { CircuitState, ResilienceEvents } from "./events";
import { countsAgainstMethod } from "./failure-kinds";

/** Options of the per-method circuit breaker. */
export interface MethodBreakerOptions extends CircuitBreakerOptions {
  /** Guard only these methods (full paths, `/pkg.Service/Method`). Default: every method. */
  methods?: readonly string[];
}

/** A per-method circuit breaker as middleware, with its circuits for inspection. */
export interface MethodBreaker {
  readonly middleware: Interceptor;
  /** The state of a method's circuit (`closed` for one never called). */
  state(method: string): CircuitState;
  /** Every circuit used so far, by method path. */
  states(): Record<string, CircuitState>;
  /** Holds `method`'s circuit open until `close(method)`; a `RangeError` for a method this breaker does not guard. */
  isolate(method: string): void;
  /** Forces `method`'s circuit closed (ending an isolation) and forgets its failures. */
  close(method: string): void;
  /** Stops the circuits' timers. */
  dispose(): void;
}

/**
 * Per-method circuit breaking (opt-in, unary calls): when a method's failures (worker trouble,
 * not caller mistakes) pass the threshold, its calls fail fast with UNAVAILABLE (category `lifecycle`, details
 * say the circuit is open) until a half-open probe succeeds. State changes are `circuitStateChange` events.
 */
export function methodBreaker(options: MethodBreakerOptions = {}, events?: ResilienceEvents): MethodBreaker {
  const circuits = new Map<string, CircuitBreaker>();
  const only = options.methods ? new Set(options.methods) : undefined;
  // Validate once, at construction.
  new CircuitBreaker(options, () => undefined);
  const circuitFor = (method: string): CircuitBreaker => {
    let circuit = circuits.get(method);
    if (!circuit) {
      circuit = new CircuitBreaker(options, (from, to, reason) => events?.report("circuitStateChange", { scope: "method", key: method, from, to, reason }));
      circuits.set(method, circuit);
    }
    return circuit;
  };
  const middleware: Interceptor = async (call, next) => {
    const path = call.method.path;
    if (call.kind !== "unary" || (only && !only.has(path))) return next(call);
    const circuit = circuitFor(path);
    if (!circuit.tryAcquire()) {
      events?.report("circuitReject", { method: path });
      throw circuitOpenError(path, circuit.state === "half-open" ? undefined : circuit.remainingOpenMs, call.options.requestId, circuit.state === "isolated");
    }
    try {
      const response = await next(call);
      circuit.onSuccess();
      return response;
    } catch (thrown) {
      const err = RpcError.from(thrown, path);
      if (countsAgainstMethod(err)) circuit.onFailure();
      else if (err.category === "cancelled" || err.category === "lifecycle") circuit.onNeutral();
      else circuit.onSuccess();
      throw thrown;
    }
  };
  return {
    middleware,
    state: (method) => circuits.get(method)?.state ?? "closed",
    states: () => Object.fromEntries([...circuits].map(([method, c]) => [method, c.state])),
    isolate: (method) => {
      if (only && !only.has(method)) throw new RangeError(`method circuit breaker: ${method} is not guarded (circuitBreaker.methods.methods lists ${[...only].join(", ")})`);
      circuitFor(method).isolate();
    },
    close: (method) => circuits.get(method)?.close(),
    dispose: () => circuits.forEach((c) => c.dispose()),
  };
}
