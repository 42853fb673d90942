import type { CallOptions } from "./call-options";

/** Call options a client can set for all its methods or per method (`pool.client(def, { defaults, methods })`). */
export type CallDefaults = Pick<CallOptions, "timeoutMs" | "idempotent" | "retry" | "hedge" | "fallback" | "metadata">;

/**
 * Layers call options: later layers win field by field; `retry` and `hedge` objects are merged
 * field by field too, so a call can change one retry knob and keep the client's others.
 */
export function mergeCallOptions(...layers: (CallOptions | CallDefaults | undefined)[]): CallOptions {
  const merged: CallOptions = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer) as [keyof CallOptions, unknown][]) {
      if (value === undefined) continue;
      const prev = merged[key];
      if ((key === "retry" || key === "hedge") && isObject(prev) && isObject(value)) {
        (merged as Record<string, unknown>)[key] = { ...prev, ...value };
      } else {
        (merged as Record<string, unknown>)[key] = value;
      }
    }
  }
  return merged;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}
