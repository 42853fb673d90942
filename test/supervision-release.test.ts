import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT, TRANSPORT } from "./helpers/env";

const run = promisify(execFile);

interface Released {
  before: Record<string, number>;
  restarted: Record<string, number>;
  afterShutdown: Record<string, number>;
}

// Each restarted worker leaves nothing behind in Node: its WorkerProcess, health monitor, grpc-js
// client, channel and subchannel, http2 session, pipeline and ChildProcess are released (counted
// by v8.queryObjects in test/fixtures/restart-release.ts). A per-worker object kept by a map, a
// listener or a timer would grow with every restart here (the soak's RSS check sees the same).
test(`six worker restarts (kill -9 and recycle) release every per-worker object (${TRANSPORT})`, async () => {
  const { stdout } = await run(process.execPath, ["--import", "tsx", join(ROOT, "test", "fixtures", "restart-release.ts")], { cwd: ROOT, env: { ...process.env, RELEASE_ROUNDS: "6" }, timeout: 90_000 });
  const released = JSON.parse(stdout.trim().split("\n").pop() as string) as Released;
  const perWorker = ["WorkerProcess", "HealthMonitor", "ChildProcess", "grpcClient", "grpcChannel", "grpcSubchannel", "http2ClientSession"];
  const expected = (n: number): Record<string, number> => Object.fromEntries(perWorker.map((name) => [name, n]));
  // The counted classes are all found (a grpc-js upgrade that moves one shows here).
  expect(Object.keys(released.before)).toEqual(expect.arrayContaining([...perWorker, "Pipeline"]));
  expect(released.before).toMatchObject(expected(2));
  expect(released.restarted).toMatchObject(expected(2));
  // At most one pipeline per live worker on the pipelined transport; none on the plain one.
  if (TRANSPORT === "pipelined") expect(released.restarted.Pipeline).toBeLessThanOrEqual(2);
  else expect(released.restarted.Pipeline).toBe(0);
  expect(released.afterShutdown).toEqual({ ...expected(0), Pipeline: 0 });
}, 120_000);
