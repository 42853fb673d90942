/**
 * What kind of failure an `RpcError` is, following pyproc's five categories plus cancellation.
 * - `timeout`: a deadline passed (see `TimeoutKind`).
 * - `connection`: the worker could not be reached or the connection to it broke.
 * - `protocol`: bytes on the wire were not valid gRPC/protobuf for the method (a bug, not load).
 * - `worker`: the Python servicer ended the call with a status or an exception.
 * - `lifecycle`: the pool could not take the call (not started, shut down, no ready worker, queue full).
 * - `cancelled`: the caller cancelled the call.
 */
export type ErrorCategory = "timeout" | "connection" | "protocol" | "worker" | "lifecycle" | "cancelled";

/**
 * Which limit fired for a `timeout` error:
 * - `context`: the caller's `signal` aborted with a TimeoutError, or the absolute `deadline` passed;
 * - `per-call`: the call's `timeoutMs` passed;
 * - `transport`: the pool's default `requestTimeoutMs` passed.
 */
export type TimeoutKind = "context" | "per-call" | "transport";
