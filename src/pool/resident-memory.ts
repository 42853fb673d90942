import { readFileSync } from "node:fs";

/**
 * Resident memory of a process in MB (one decimal), from the `VmRSS` line of /proc/<pid>/status
 * (kB, independent of the page size), or undefined when the process is gone or not on Linux.
 */
export function residentMemoryMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Math.round((Number(match[1]) / 1024) * 10) / 10 : undefined;
}
