import type { Interceptor } from "../call/interceptor";
import { RpcError } from "../core/rpc-error";
import { Status } from "../core/status";

import { hasSwitchedOffDetail, SWITCHED_OFF_REASON } from "../core/switched-off";

export { SWITCHED_OFF_REASON };

/** What a kill switch names: a method (`/pkg.Service/Method`) or a whole service (`pkg.Service`). */
export type SwitchScope = "method" | "service";

/** Listeners of a kill switch (the pool turns them into its events). */
export interface KillSwitchListener {
  /** `target` was switched off (`on: false`) or back on. */
  changed?(target: string, scope: SwitchScope, on: boolean): void;
  /** A call to `method` was refused because `target` is off. */
  refused?(method: string, target: string): void;
}

const METHOD_PATH = /^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/;
const SERVICE_NAME = /^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*$/;

/** Services of procgrpc and grpc that the pool and its workers run on: never switched off. */
const INTERNAL_SERVICE = /^(procgrpc\.internal\.|grpc\.health\.v1\.|grpc\.reflection\.)/;

/**
 * Checks and normalises a switch target: a method path (`/pkg.Service/Method`, the leading `/`
 * optional) or a fully qualified service name (`pkg.Service`). Anything else, and procgrpc's
 * and grpc's internal services (health, reflection, the pipe, the workers' control services),
 * is a `TypeError`.
 */
export function switchTarget(target: string): { target: string; scope: SwitchScope } {
  if (typeof target !== "string") throw new TypeError(`kill switch: the target must be a string, got ${JSON.stringify(target)}`);
  const t = target.trim();
  const path = t.startsWith("/") ? t : `/${t}`;
  let found: { target: string; scope: SwitchScope } | undefined;
  if (t.includes("/") && METHOD_PATH.test(path)) found = { target: path, scope: "method" };
  else if (SERVICE_NAME.test(t)) found = { target: t, scope: "service" };
  if (!found) throw new TypeError(`kill switch: ${JSON.stringify(target)} is neither a method path (/pkg.Service/Method) nor a service name (pkg.Service)`);
  const service = found.scope === "method" ? serviceOf(found.target) : found.target;
  if (INTERNAL_SERVICE.test(`${service}.`)) throw new TypeError(`kill switch: ${service} is an internal service (health, reflection, procgrpc's own); it cannot be switched off`);
  return found;
}

/** The service of a method path (`pkg.Service` of `/pkg.Service/Method`). */
function serviceOf(path: string): string {
  return path.slice(1, path.lastIndexOf("/"));
}

/**
 * The error a switched-off method fails with: UNAVAILABLE, category `lifecycle`, never reached
 * a worker, not `retryable` (it stays off until an operator turns it on), with an ErrorInfo
 * (`reason: "SWITCHED_OFF"`, domain `procgrpc`, metadata `method` and `target`).
 */
export function switchedOffError(method: string, target: string, requestId?: string): RpcError {
  const what = target === method ? method : `${method} (service ${target})`;
  return new RpcError({
    code: Status.UNAVAILABLE,
    details: `${what} is switched off for this pool: failing fast without calling a worker`,
    category: "lifecycle",
    method,
    requestId,
    reachedWorker: false,
    retryable: false,
    statusDetails: [{ kind: "ErrorInfo", typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: { reason: SWITCHED_OFF_REASON, domain: "procgrpc", metadata: { method, target } } }],
  });
}

/** True when `err` came from a kill switch. */
export function isSwitchedOff(err: RpcError): boolean {
  return hasSwitchedOffDetail(err.statusDetails);
}

/**
 * Kill switches of one pool: methods or whole services an operator turned off at run time.
 * `interceptor` sits in the built-in chain right inside the fallback, so a switched-off call
 * fails fast with `switchedOffError` (every call kind), or is answered by the method's fallback
 * (unary calls), and never reaches retry, the breakers or a worker.
 */
export class KillSwitch {
  private readonly off = new Map<string, SwitchScope>();
  private listener: KillSwitchListener = {};

  /** Tells `listener` of changes and refusals (one listener; the pool's). */
  listen(listener: KillSwitchListener): void {
    this.listener = listener;
  }

  /** Switches `target` off; false when it already was. */
  switchOff(target: string): boolean {
    const t = switchTarget(target);
    if (this.off.has(t.target)) return false;
    this.off.set(t.target, t.scope);
    this.listener.changed?.(t.target, t.scope, false);
    return true;
  }

  /** Switches `target` back on; false when it was not off. */
  switchOn(target: string): boolean {
    const t = switchTarget(target);
    if (!this.off.delete(t.target)) return false;
    this.listener.changed?.(t.target, t.scope, true);
    return true;
  }

  /** The switched-off target that covers `method` (its own path, or its service), if any. */
  offFor(method: string): string | undefined {
    if (this.off.size === 0) return undefined;
    if (this.off.has(method)) return method;
    const service = serviceOf(method);
    return this.off.has(service) ? service : undefined;
  }

  /** The targets switched off now, sorted. */
  list(): string[] {
    return [...this.off.keys()].sort();
  }

  /** The interceptor that refuses calls to switched-off methods. */
  readonly interceptor: Interceptor = (call, next) => {
    const target = this.offFor(call.method.path);
    if (target === undefined) return next(call);
    this.listener.refused?.(call.method.path, target);
    return Promise.reject(switchedOffError(call.method.path, target, call.options.requestId));
  };
}
