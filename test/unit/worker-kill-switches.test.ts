/** The pool's push of kill switches to its workers (src/pool/worker-kill-switches.ts): pure logic, a fake send, fake timers. */
import type { Client } from "@grpc/grpc-js";
import { silentLogger } from "../../src";
import { WorkerKillSwitches, type SwitchableWorker, type SwitchedOffSet } from "../../src/pool/worker-kill-switches";

const channel = {} as Client;
const worker = (id: string): SwitchableWorker & { exit: unknown } => ({ id, channel, exit: undefined });

/** A fake worker side: records every push; `fail` makes the next n pushes fail. */
function fakeSend() {
  const sent: { token: string; set: SwitchedOffSet }[] = [];
  let failures = 0;
  const send = async (_c: Client, token: string, set: SwitchedOffSet): Promise<SwitchedOffSet> => {
    sent.push({ token, set });
    if (failures > 0) {
      failures -= 1;
      throw new Error("UNAVAILABLE: connection dropped");
    }
    return set;
  };
  return { sent, send, fail: (n: number) => (failures = n) };
}

afterEach(() => jest.useRealTimers());

test("a worker spawned with the set in force is not pushed to at start; one spawned before a change is, with the pool's token", async () => {
  const fake = fakeSend();
  const switches = new WorkerKillSwitches(silentLogger, fake.send);
  const early = worker("w0");
  const spawned = switches.spawnEnvironment();
  expect(spawned.env).toMatchObject({ PROCGRPC_SWITCHED_OFF: "", PROCGRPC_SWITCHED_OFF_GENERATION: "0" });
  expect(spawned.env.PROCGRPC_CONTROL_TOKEN).toMatch(/^[\w-]{40,}$/);
  switches.spawned(early, spawned.generation);

  expect(switches.add("/a.v1.S/M")).toBe(true);
  expect(switches.add("/a.v1.S/M")).toBe(false);
  await switches.sync(); // w0 is not SERVING yet: nothing to push to
  expect(fake.sent).toEqual([]);

  const late = worker("w1");
  const lateEnv = switches.spawnEnvironment();
  expect(lateEnv.env).toMatchObject({ PROCGRPC_SWITCHED_OFF: "/a.v1.S/M", PROCGRPC_SWITCHED_OFF_GENERATION: "1" });
  switches.spawned(late, lateEnv.generation);

  await switches.prepare(late, new Date(Date.now() + 1000));
  expect(fake.sent).toEqual([]);
  await switches.prepare(early, new Date(Date.now() + 1000));
  expect(fake.sent).toEqual([{ token: spawned.env.PROCGRPC_CONTROL_TOKEN, set: { targets: ["/a.v1.S/M"], generation: 1 } }]);
});

test("a change is pushed to every started worker; a failed push is retried with backoff until taken, or until the worker is gone", async () => {
  jest.useFakeTimers();
  const fake = fakeSend();
  const switches = new WorkerKillSwitches(silentLogger, fake.send);
  const [a, b] = [worker("w0"), worker("w1")];
  for (const w of [a, b]) {
    switches.spawned(w, switches.spawnEnvironment().generation);
    await switches.prepare(w, new Date(Date.now() + 1000));
  }
  fake.fail(2);
  switches.add("a.v1.S");
  let done = false;
  const synced = switches.sync().then(() => (done = true));
  await jest.advanceTimersByTimeAsync(0);
  expect(fake.sent.map((s) => s.set)).toEqual([
    { targets: ["a.v1.S"], generation: 1 },
    { targets: ["a.v1.S"], generation: 1 },
  ]);
  expect(done).toBe(false);
  await jest.advanceTimersByTimeAsync(50);
  await synced;
  expect(fake.sent).toHaveLength(4);

  // A worker that exits while its push is failing is let go.
  fake.fail(100);
  switches.remove("a.v1.S");
  const gone = switches.sync();
  await jest.advanceTimersByTimeAsync(0);
  a.exit = { code: null, signal: "SIGKILL" };
  b.exit = { code: 0, signal: null };
  await jest.advanceTimersByTimeAsync(1000);
  await gone;
  expect(fake.sent.slice(4).every((s) => s.set.generation === 2 && s.set.targets.length === 0)).toBe(true);
});

test("after close nothing more is pushed", async () => {
  const fake = fakeSend();
  const switches = new WorkerKillSwitches(silentLogger, fake.send);
  const w = worker("w0");
  switches.spawned(w, switches.spawnEnvironment().generation);
  await switches.prepare(w, new Date(Date.now() + 1000));
  switches.close();
  switches.add("/a.v1.S/M");
  await switches.sync();
  expect(fake.sent).toEqual([]);
  expect(switches.has("/a.v1.S/M")).toBe(true);
});
