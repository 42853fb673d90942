/**
 * gRPC status codes, with the numeric values gRPC puts on the wire.
 * `Status[code]` gives the name, e.g. `Status[3] === "INVALID_ARGUMENT"`.
 */
export enum Status {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** Returns the name of a status code, or `CODE_<n>` for a number outside the gRPC range. */
export function statusName(code: number): string {
  return Status[code] ?? `CODE_${code}`;
}
