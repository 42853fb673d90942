import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { UnaryMethod } from "../../src/call/method";
import { WORKERS } from "./env";

/** test/workers/hostile_worker.py: testing.v1.TestService plus procgrpc.test.Hostile (JSON). */
export const HOSTILE_WORKER = join(WORKERS, "hostile_worker.py");

/** A procgrpc.test.Hostile method: plain JSON objects in and out. */
export function hostile(name: string): UnaryMethod<unknown, Record<string, unknown>> {
  return {
    path: `/procgrpc.test.Hostile/${name}`,
    serialize: (request) => Buffer.from(JSON.stringify(request ?? {})),
    deserialize: (bytes) => JSON.parse(bytes.length ? bytes.toString("utf8") : "{}") as Record<string, unknown>,
    idempotent: false,
  };
}

/** Live (not zombie) processes whose process group is `pgid`, from /proc. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses, so split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] !== "Z" && Number(fields[2]) === pgid) out.push(Number(entry));
  }
  return out;
}
