import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { portable } from "./platform";

/** How long a `ps` reading is reused (each call of the portable path would spawn `ps`). */
const PS_CACHE_MS = 500;
const psCache = new Map<number, { at: number; mb: number | undefined }>();

/**
 * Resident memory of a process in MB (one decimal), or undefined when the process is gone.
 * Linux: the `VmRSS` line of /proc/<pid>/status (kB, independent of the page size). Elsewhere
 * (macOS) or with PROCGRPC_PORTABLE=1: `ps -o rss= -p <pid>` (kB on macOS and Linux, POSIX), one
 * spawn per process at most every 500 ms.
 */
export function residentMemoryMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  return portable() ? fromPs(pid) : fromProc(pid);
}

function fromProc(pid: number): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? toMb(Number(match[1])) : undefined;
}

function fromPs(pid: number): number | undefined {
  const now = Date.now();
  const cached = psCache.get(pid);
  if (cached && now - cached.at < PS_CACHE_MS) return cached.mb;
  let mb: number | undefined;
  try {
    const out = execFileSync("ps", ["-o", "rss=", "-p", String(pid)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 2000 });
    const kb = Number(out.trim());
    mb = out.trim() && Number.isFinite(kb) ? toMb(kb) : undefined;
  } catch {
    mb = undefined; // exit status 1: no such process
  }
  if (psCache.size > 256) psCache.clear();
  psCache.set(pid, { at: now, mb });
  return mb;
}

function toMb(kb: number): number {
  return Math.round((kb / 1024) * 10) / 10;
}
