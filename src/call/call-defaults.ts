import type { BaseCallOptions } from "./call-options";

/**
 * Options a client can set for all its methods or per method (`pool.client(def, { defaults,
 * methods })`): every call option but those that belong to one call (signal, deadline, hooks,
 * request id).
 */
export type CallDefaults<O extends BaseCallOptions = BaseCallOptions> = Omit<O, "signal" | "deadline" | "requestId" | "onHeader" | "onTrailer">;

/**
 * Layers call options: later layers win field by field; option values that are plain objects
 * (e.g. `retry: { maxAttempts }`) are merged field by field too, so a call can change one knob
 * and keep the client's others. `metadata` is replaced, not merged.
 */
export function mergeCallOptions<O extends BaseCallOptions>(...layers: (Partial<O> | undefined)[]): O {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const prev = merged[key];
      merged[key] = key !== "metadata" && isPlainObject(prev) && isPlainObject(value) ? { ...prev, ...value } : value;
    }
  }
  return merged as O;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}
