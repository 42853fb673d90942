/** A slot's supervision (src/pool/worker-slot.ts) over fake processes and fake timers: restarts, crash loops, hangs, recycles, drain. */
import { resolvePoolOptions } from "../../src/pool/options";
import type { WorkerPoolEvents } from "../../src/pool/pool-events";
import type { WorkerProcess } from "../../src/pool/worker-process";
import { WorkerSlot, type SlotHost } from "../../src/pool/worker-slot";
import type { WorkerExit, WorkerState } from "../../src/pool/worker-state";
import { silentLogger } from "../../src";

let nextPid = 1000;

/** A process that starts and exits when the test says so. */
class FakeProcess {
  readonly pid = nextPid++;
  readonly socketPath = `/tmp/fake-${this.pid}.sock`;
  readonly stderr: string[] = [];
  readonly calls = new Set();
  readonly channel = undefined;
  inFlight = 0;
  served = 0;
  exit: WorkerExit | undefined;
  private current: WorkerState = "starting";
  private onState: ((from: WorkerState, to: WorkerState) => void) | undefined;
  private onExitListener: ((exit: WorkerExit) => void) | undefined;
  private settleStart: { resolve: () => void; reject: (e: Error) => void } | undefined;
  get state(): WorkerState {
    return this.current;
  }
  set state(to: WorkerState) {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    this.onState?.(from, to);
  }
  onStateChange(l: (from: WorkerState, to: WorkerState) => void): void {
    this.onState = l;
  }
  onExit(l: (exit: WorkerExit) => void): void {
    this.onExitListener = l;
  }
  start(): Promise<void> {
    return new Promise((resolve, reject) => (this.settleStart = { resolve, reject }));
  }
  /** The process answered SERVING. */
  ready(): void {
    this.state = "ready";
    this.settleStart?.resolve();
  }
  /** The process ended (crash, or its stop). */
  die(exit: WorkerExit = { code: 1, signal: null }): void {
    if (this.exit) return;
    this.exit = exit;
    this.settleStart?.reject(new Error("exited before it was ready"));
    this.onExitListener?.(exit);
  }
  stop(): Promise<WorkerExit> {
    this.die({ code: 0, signal: null });
    return Promise.resolve(this.exit as WorkerExit);
  }
  kill(): void {
    this.die({ code: null, signal: "SIGKILL" });
  }
}

function setup(overrides: Record<string, unknown> = {}) {
  const processes: FakeProcess[] = [];
  const events: string[] = [];
  let running = true;
  const host: SlotHost = {
    options: resolvePoolOptions({ script: "w.py", restart: { initialDelayMs: 100, maxDelayMs: 1000, maxRestarts: 2, windowMs: 60_000 }, ...overrides }),
    logger: silentLogger,
    running: () => running,
    createProcess: () => {
      const p = new FakeProcess();
      processes.push(p);
      return p as unknown as WorkerProcess;
    },
    emit: <K extends keyof WorkerPoolEvents>(name: K, ...args: WorkerPoolEvents[K]) => {
      const payload = args[0] as Record<string, unknown>;
      events.push(name === "workerState" ? `state:${String(payload.from)}>${String(payload.to)}` : name);
    },
    stateChanged: () => undefined,
    workerAvailable: () => undefined,
    workerGone: () => undefined,
    counts: () => ({ ready: 1, total: 1 }),
  };
  const slot = new WorkerSlot("w0", host, { index: 0, role: "active", resources: { env: {}, args: [], cpuAffinity: undefined } });
  const latest = (): FakeProcess => processes[processes.length - 1];
  return { slot, processes, events, latest, stopPool: () => (running = false) };
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test("an unexpected exit is restarted after a backoff; the events come in order", async () => {
  const { slot, latest, events, processes } = setup();
  const first = slot.startFirst();
  latest().ready();
  await first;
  slot.activate();
  events.length = 0;
  latest().die();
  expect(events).toEqual(["workerExit", "state:ready>restarting", "workerRestart"]);
  expect(processes).toHaveLength(1);
  jest.advanceTimersByTime(100); // the first delay is at most initialDelayMs (jittered)
  expect(processes).toHaveLength(2);
  latest().ready();
  await flush();
  expect(events.slice(-2)).toEqual(["state:starting>ready", "workerReady"]);
  expect(slot.restarts).toBe(1);
  expect(slot.lastExit).toBe("exit code 1");
});

test("more restarts than maxRestarts in the window: failed and degraded, then recovered when one serves", async () => {
  const { slot, latest, events } = setup();
  const first = slot.startFirst();
  latest().ready();
  await first;
  slot.activate();
  for (let i = 0; i < 3; i++) {
    latest().die();
    jest.advanceTimersByTime(1000);
  }
  expect(events).toContain("degraded");
  expect(slot.failed).toBe(true);
  latest().ready();
  await flush();
  expect(events).toContain("recovered");
  expect(slot.failed).toBe(false);
});

test("a kill for a hang is restarted at once and is not counted as a crash", async () => {
  const { slot, latest, events, processes } = setup();
  const first = slot.startFirst();
  latest().ready();
  await first;
  slot.activate();
  slot.killForHang(latest() as unknown as WorkerProcess, "cancel-grace", "/a.B/C", "r", 2500);
  expect(events).toContain("workerHung");
  jest.advanceTimersByTime(0);
  expect(processes).toHaveLength(2);
  expect(slot.lastExit).toBe("signal SIGKILL (killed by the pool: cancel-grace on /a.B/C)");
});

test("recycle: the replacement serves first, then the old process drains its calls and stops (expected exit)", async () => {
  const { slot, latest, events, processes } = setup();
  const first = slot.startFirst();
  latest().ready();
  await first;
  slot.activate();
  const old = latest();
  old.inFlight = 1;
  events.length = 0;
  const recycled = slot.recycle("manual");
  latest().ready();
  await flush();
  expect(processes).toHaveLength(2);
  expect(slot.process).toBe(processes[1]);
  expect(events).toEqual(expect.arrayContaining(["workerReady", "workerRecycled", "state:ready>draining"]));
  expect(old.exit).toBeUndefined(); // still finishing its call
  old.inFlight = 0;
  slot.onServed(old as unknown as WorkerProcess);
  await recycled;
  expect(old.exit).toEqual({ code: 0, signal: null });
  expect(events.filter((e) => e === "workerRestart")).toEqual([]);
});

test("drain: no restart after the process stops", async () => {
  const { slot, latest, events, processes } = setup();
  const first = slot.startFirst();
  latest().ready();
  await first;
  slot.activate();
  await slot.drain();
  jest.advanceTimersByTime(10_000);
  expect(processes).toHaveLength(1);
  expect(events).not.toContain("workerRestart");
  expect(slot.leaving).toBe(true);
  await expect(slot.recycle("manual")).rejects.toThrow(/draining out of the pool/);
});
