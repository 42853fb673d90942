/**
 * Checks of numeric options, one wording for every constructor: a value of the wrong type is a
 * `TypeError`, a number outside its range a `RangeError`, both naming the owner and the option.
 */

/** Bounds of a numeric option (inclusive). */
export interface NumberBounds {
  min?: number;
  max?: number;
}

function check(owner: string, name: string, value: unknown, integer: boolean, { min = -Infinity, max = Infinity }: NumberBounds): number {
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(`${owner}: ${name} must be ${integer ? "an integer" : "a number"}, got ${typeof value === "number" ? "NaN" : JSON.stringify(value) ?? String(value)}`);
  }
  if ((integer && !Number.isInteger(value)) || (!integer && !Number.isFinite(value) && value !== max) || value < min || value > max) {
    const range = max === Infinity ? `>= ${min}` : `between ${min} and ${max}`;
    throw new RangeError(`${owner}: ${name} must be ${integer ? "an integer" : "a number"} ${range}, got ${String(value)}`);
  }
  return value;
}

/** An integer option: `fallback` when undefined, else checked against `bounds` (default min 0). */
export function integerOption(owner: string, name: string, value: number | undefined, fallback: number, bounds: NumberBounds = {}): number {
  return value === undefined ? fallback : check(owner, name, value, true, { min: 0, ...bounds });
}

/** A finite number option: `fallback` when undefined, else checked against `bounds` (default min 0). */
export function numberOption(owner: string, name: string, value: number | undefined, fallback: number, bounds: NumberBounds = {}): number {
  return value === undefined ? fallback : check(owner, name, value, false, { min: 0, ...bounds });
}
