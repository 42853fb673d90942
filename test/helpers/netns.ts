import { execFileSync, spawnSync } from "node:child_process";

/** One simulated host: a network namespace joined to the test bridge by a veth pair. */
export interface TestHost {
  ns: string;
  address: string;
  /** The root-namespace end of its veth: `cut()` sets it down, `restore()` up. */
  bridgePort: string;
}

/** Several hosts on one bridge in the root namespace (where the Node client runs). */
export interface TestNetwork {
  hosts: TestHost[];
  bridge: string;
  clientAddress: string;
  cut(host: TestHost): void;
  restore(host: TestHost): void;
  remove(): void;
}

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * Whether this process can create network namespaces (root, iproute2, kernel support); when not,
 * the reason, so that the suite can say so loudly.
 */
export function netnsUnavailableReason(): string | undefined {
  const which = spawnSync("ip", ["-V"], { encoding: "utf8" });
  if (which.error || which.status !== 0) return "the `ip` command (iproute2) is not installed: apt-get install iproute2";
  const probe = `pgprobe${process.pid % 100000}`;
  const add = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (add.status !== 0) return `\`ip netns add\` failed: ${add.stderr.trim()} (needs root / CAP_SYS_ADMIN)`;
  spawnSync("ip", ["netns", "del", probe]);
  return undefined;
}

/**
 * Creates `count` hosts on 10.231.N.0/24 (N from the pid, so parallel runs do not collide): a
 * bridge with the client address .1 in the root namespace, host i at .(11+i) in its own
 * namespace. Nothing is routed anywhere else. `remove()` deletes everything and is safe to
 * call twice; call it in afterAll so that a failing test still cleans up.
 */
export function createTestNetwork(count: number): TestNetwork {
  const tag = String(process.pid % 100000);
  const subnet = `10.231.${20 + (process.pid % 200)}`;
  const bridge = `pgbr${tag}`;
  const hosts: TestHost[] = [];
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    for (const h of hosts) spawnSync("ip", ["netns", "del", h.ns]);
    spawnSync("ip", ["link", "del", bridge]);
  };
  try {
    ip(["link", "add", bridge, "type", "bridge"]);
    ip(["addr", "add", `${subnet}.1/24`, "dev", bridge]);
    ip(["link", "set", bridge, "up"]);
    for (let i = 0; i < count; i++) {
      const host: TestHost = { ns: `pgh${tag}-${i}`, address: `${subnet}.${11 + i}`, bridgePort: `pgb${tag}-${i}` };
      const inner = `pgv${tag}-${i}`;
      ip(["netns", "add", host.ns]);
      hosts.push(host);
      ip(["link", "add", host.bridgePort, "type", "veth", "peer", "name", inner]);
      ip(["link", "set", inner, "netns", host.ns]);
      ip(["link", "set", host.bridgePort, "master", bridge]);
      ip(["link", "set", host.bridgePort, "up"]);
      ip(["-n", host.ns, "addr", "add", `${host.address}/24`, "dev", inner]);
      ip(["-n", host.ns, "link", "set", inner, "up"]);
      ip(["-n", host.ns, "link", "set", "lo", "up"]);
    }
  } catch (err) {
    remove();
    throw err;
  }
  return {
    hosts,
    bridge,
    clientAddress: `${subnet}.1`,
    cut: (h) => ip(["link", "set", h.bridgePort, "down"]),
    restore: (h) => ip(["link", "set", h.bridgePort, "up"]),
    remove,
  };
}
