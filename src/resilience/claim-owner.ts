import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/**
 * Who holds a dead-letter claim: the replaying process, written into the claim's file name so that
 * a claim can be taken over from a dead owner by one atomic rename of a name nobody else can reuse.
 *
 * `host` is a short hash of the host name; on Linux `boot` is the start of the boot id and `start`
 * the process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22), so that a
 * reused pid or a reboot never passes for the owner. Elsewhere both are `-` and only the pid is
 * checked.
 */
export interface ClaimOwner {
  host: string;
  boot: string;
  pid: number;
  start: string;
}

/** How an owner looks in a file name: `<host>.<boot>.<pid>.<start>` (no `~`, no `/`). */
export function formatOwner(owner: ClaimOwner): string {
  return `${owner.host}.${owner.boot}.${owner.pid}.${owner.start}`;
}

/** Parses `formatOwner`'s output; undefined for anything else. */
export function parseOwner(text: string): ClaimOwner | undefined {
  const m = /^([0-9a-f]{8})\.([0-9a-f]{8}|-)\.([1-9][0-9]*)\.([0-9]+|-)$/.exec(text);
  if (!m) return undefined;
  return { host: m[1], boot: m[2], pid: Number(m[3]), start: m[4] };
}

/** The start time (field 22) and state (field 3) of a `/proc/<pid>/stat` line. */
export function parseProcStat(stat: string): { state: string; start: string } | undefined {
  // The command name (field 2) is in parentheses and may contain spaces and ')'.
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(" ");
  const start = fields[19];
  if (!fields[0] || !start || !/^[0-9]+$/.test(start)) return undefined;
  return { state: fields[0], start };
}

/** What the machine says about a process: gone, alive (with its start time), or unknown. */
export type ProcessProbe = { kind: "gone" } | { kind: "alive"; start: string; zombie: boolean } | { kind: "unknown" };

/** Facts about this machine used to judge owners (injectable for tests). */
export interface OwnerEnvironment {
  self: ClaimOwner;
  probe(pid: number): ProcessProbe;
}

/**
 * Whether `owner` is certainly dead. Never says dead for a live owner: a claim from another host
 * (a shared filesystem) or one that cannot be checked counts as alive.
 */
export function ownerIsDead(owner: ClaimOwner, env: OwnerEnvironment): boolean {
  if (owner.host !== env.self.host) return false;
  if (owner.boot !== "-" && env.self.boot !== "-" && owner.boot !== env.self.boot) return true; // rebooted since
  const probe = env.probe(owner.pid);
  if (probe.kind === "gone") return true;
  if (probe.kind === "unknown") return false;
  if (probe.zombie) return true; // killed, not yet reaped by its parent
  return owner.start !== "-" && probe.start !== owner.start;
}

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}

function readProcStat(pid: number): ProcessProbe {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? { kind: "gone" } : { kind: "unknown" };
  }
  const parsed = parseProcStat(stat);
  return parsed ? { kind: "alive", start: parsed.start, zombie: parsed.state === "Z" } : { kind: "unknown" };
}

function signalProbe(pid: number): ProcessProbe {
  try {
    process.kill(pid, 0);
    return { kind: "alive", start: "-", zombie: false };
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH" ? { kind: "gone" } : { kind: "alive", start: "-", zombie: false };
  }
}

let machine: OwnerEnvironment | undefined;

/** This process as a claim owner, and the probe for other processes on this machine. */
export function thisMachine(): OwnerEnvironment {
  if (machine) return machine;
  const host = shortHash(hostname());
  let boot = "-";
  let start = "-";
  let probe: (pid: number) => ProcessProbe = signalProbe;
  try {
    boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").replace(/-/g, "").trim().slice(0, 8);
    const self = readProcStat(process.pid);
    if (self.kind === "alive" && /^[0-9a-f]{8}$/.test(boot)) {
      start = self.start;
      probe = readProcStat;
    } else {
      boot = "-";
    }
  } catch {
    boot = "-";
  }
  machine = { self: { host, boot, pid: process.pid, start }, probe };
  return machine;
}
