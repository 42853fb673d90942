import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { PYTHON, WORKERS } from "./env";

/** A worker started by hand on TCP (no pool parent), optionally inside a network namespace. */
export interface RemoteWorker {
  proc: ChildProcess;
  pid: number;
  /** The bound `host:port` from the worker's ready line. */
  listen: string;
  stderr: string[];
  stop(): Promise<void>;
}

/** Environment without the pool's PROCGRPC_* variables. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PROCGRPC_")) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Runs `script` (default the testing worker) with `args` (e.g. `--listen 127.0.0.1:0`) and `env`;
 * in namespace `netns` via `ip netns exec` when given. Resolves once it logs `ready`; rejects
 * with its stderr if it exits first (`expectExit` resolves with the exit code instead).
 */
export function startRemoteWorker(opts: { args: string[]; env?: Record<string, string>; netns?: string; script?: string }): Promise<RemoteWorker> {
  const script = opts.script ?? join(WORKERS, "testing_worker.py");
  const argv = [script, ...opts.args];
  const proc = opts.netns ? spawn("ip", ["netns", "exec", opts.netns, PYTHON, ...argv], { env: cleanEnv(opts.env ?? {}), stdio: ["ignore", "ignore", "pipe"] }) : spawn(PYTHON, argv, { env: cleanEnv(opts.env ?? {}), stdio: ["ignore", "ignore", "pipe"] });
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let buf = "";
    proc.stderr?.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        stderr.push(line);
        if (line.startsWith("{")) {
          const rec = JSON.parse(line) as { msg?: string; listen?: string };
          if (rec.msg === "ready" && rec.listen) {
            resolve({
              proc,
              pid: proc.pid as number,
              listen: rec.listen,
              stderr,
              stop: async () => {
                if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
                const timer = setTimeout(() => proc.kill("SIGKILL"), 8000);
                await exited;
                clearTimeout(timer);
              },
            });
          }
        }
      }
    });
    void exited.then((code) => reject(Object.assign(new Error(`worker exited with ${code} before ready:\n${stderr.join("\n")}`), { exitCode: code, stderr })));
  });
}

/** Runs a worker that is expected to refuse to start; resolves with its exit code and stderr. */
export async function expectWorkerExit(opts: { args: string[]; env?: Record<string, string>; netns?: string }): Promise<{ exitCode: number | null; stderr: string }> {
  try {
    const w = await startRemoteWorker(opts);
    await w.stop();
    throw new Error(`worker started on ${w.listen} but was expected to refuse`);
  } catch (err) {
    const e = err as { exitCode?: number | null; stderr?: string[] };
    if (!("exitCode" in e)) throw err;
    return { exitCode: e.exitCode ?? null, stderr: (e.stderr ?? []).join("\n") };
  }
}
