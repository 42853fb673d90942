// The three comparison servers a one-server measurement runs against (not procgrpc): the bare
// gRPC stream, the binary socket floor and the pyproc-style JSON peer, each on a socket in `dir`.
import { join } from "node:path";
import { startBareStreamServer } from "./bare-stream";
import { startPeerServer, type PeerServer } from "./peer-clients";
import { benchDir } from "./paths";

/**
 * Starts one server of each kind. Each is pushed onto `started` as soon as it runs, so the
 * caller's cleanup stops the ones that started when a later one fails.
 */
export async function startComparisonServers(python: string, dir: string, started: PeerServer[]): Promise<{ bare: PeerServer; binary: PeerServer; json: PeerServer }> {
  const bare = await startBareStreamServer(python, join(benchDir, "bare_stream_server.py"), join(dir, "bare.sock"));
  started.push(bare);
  const binary = await startPeerServer(python, join(benchDir, "peer_servers.py"), "binary", join(dir, "bin.sock"));
  started.push(binary);
  const json = await startPeerServer(python, join(benchDir, "peer_servers.py"), "json", join(dir, "json.sock"));
  started.push(json);
  return { bare, binary, json };
}
