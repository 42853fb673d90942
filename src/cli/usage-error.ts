/** An error in how the command was invoked: printed with the usage text, exit code 2. */
export function usageError(message: string, usage: string): Error {
  return Object.assign(new Error(`${message}\n\n${usage}`), { exitCode: 2 });
}

/** Parses a positive integer flag value or throws a usage error naming the flag. */
export function intFlag(name: string, value: string | undefined, usage: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw usageError(`--${name} must be an integer >= ${min}, got '${value}'`, usage);
  return n;
}
