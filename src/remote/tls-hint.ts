import { RpcError } from "../core/rpc-error";

// grpc-js reports a failed TLS handshake as UNAVAILABLE "No connection established. Last error: …"
// with Node's TLS error text; these are the texts that mean "check the certificates".
const TLS_FAILURE = /certificate|self[- ]signed|unable to (get|verify)|SSL|TLS|handshake|altnames|Hostname\/IP does not match/i;

/**
 * Adds what to check to a connection error caused by TLS (wrong CA, name mismatch, a worker
 * requiring a client certificate): the code and category stay UNAVAILABLE/connection.
 */
export function withTlsHint(err: unknown, target: string): unknown {
  if (!(err instanceof RpcError) || err.category !== "connection" || !TLS_FAILURE.test(err.details())) return err;
  return err.with({
    details: `${err.details()} (TLS to ${target} failed: check RemotePool \`tls.ca\` against the CA that signed the worker's certificate, \`tls.serverName\` against its names, and \`tls.cert\`/\`tls.key\` if the worker requires client certificates)`,
  });
}
