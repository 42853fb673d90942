import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./env";

/**
 * Starts the Node fixture `test/fixtures/<fixture>` (a process that holds a pool, for tests that
 * kill it) with `env` added, and resolves with the process and the first line it prints.
 */
export async function startHolder(fixture: string, env: Record<string, string>): Promise<{ holder: ChildProcess; line: string }> {
  const holder = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test", "fixtures", fixture)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = "";
    holder.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      if (buf.includes("\n")) resolve(buf.split("\n")[0]);
    });
    holder.once("exit", (code) => reject(new Error(`${fixture} exited early with ${code}`)));
  });
  return { holder, line };
}
