/** Admission (src/pool/admission.ts) with fake workers and fake timers: pure logic, no processes. */
import { Admission, type AdmissionHost, type AdmissionWorker } from "../../src/pool/admission";
import { RpcError, Status } from "../../src";
import type { Lease } from "../../src/transport/call-target";

type FakeWorker = AdmissionWorker & { state: AdmissionWorker["state"] };

function worker(id: string, state: FakeWorker["state"] = "ready"): FakeWorker {
  return { id, state, inFlight: 0, served: 0, channel: undefined, calls: new Set() };
}

function setup(workers: FakeWorker[], limits = { maxInFlightPerWorker: 1, maxQueue: 2, waitForReadyMs: 1000 }) {
  const events: string[] = [];
  let leases = 0;
  const host: AdmissionHost<FakeWorker> = {
    workers: () => workers,
    lease: (target, release) => {
      leases += 1;
      let done = false;
      return { target, release: () => { if (done) return; done = true; leases -= 1; release(); } };
    },
    released: (w) => events.push(`released:${w.id}`),
    dequeued: (e) => events.push(`dequeued:${e.workerId}`),
    queueFull: () => events.push("queueFull"),
  };
  return { admission: new Admission(host, limits), events, leasesOut: () => leases };
}

const request = (over: Partial<Parameters<Admission<FakeWorker>["acquire"]>[0]> = {}) => ({
  method: "/a.B/C",
  requestId: "r",
  idempotent: false,
  deadline: { at: Date.now() + 60_000, kind: "transport" as const },
  signal: undefined,
  ...over,
});

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test("picks the least-loaded ready worker, never above the limit, and skips excluded ones", () => {
  const [a, b, c] = [worker("a"), worker("b"), worker("c", "unhealthy")];
  const { admission } = setup([a, b, c], { maxInFlightPerWorker: 2, maxQueue: 0, waitForReadyMs: 0 });
  const l1 = admission.acquire(request()) as Lease;
  const l2 = admission.acquire(request()) as Lease;
  expect(new Set([l1.target.id, l2.target.id])).toEqual(new Set(["a", "b"]));
  const l3 = admission.acquire(request({ exclude: new Set(["a"]) })) as Lease;
  expect(l3.target.id).toBe("b");
  expect(b.inFlight).toBe(2);
});

test("a worker to avoid is used only when no other ready worker has room", () => {
  const [a, b] = [worker("a"), worker("b")];
  const { admission } = setup([a, b], { maxInFlightPerWorker: 1, maxQueue: 0, waitForReadyMs: 0 });
  expect((admission.acquire(request({ avoid: new Set(["a"]) })) as Lease).target.id).toBe("b");
  expect((admission.acquire(request({ avoid: new Set(["a"]) })) as Lease).target.id).toBe("a");
});

test("a released lease gives its capacity to the oldest waiter, once, however often it is released", async () => {
  const a = worker("a");
  const { admission, events } = setup([a]);
  const first = admission.acquire(request()) as Lease;
  const second = admission.acquire(request()) as Promise<Lease>;
  const third = admission.acquire(request()) as Promise<Lease>;
  expect(admission.queued).toBe(2);
  first.release();
  first.release();
  const granted = await second;
  expect(granted.target).toBe(a);
  expect(a.inFlight).toBe(1);
  expect(admission.queued).toBe(1);
  expect(events).toEqual(["dequeued:a", "released:a"]);
  granted.release();
  (await third).release();
  expect(a).toMatchObject({ inFlight: 0, served: 3 });
});

test("a full queue refuses with RESOURCE_EXHAUSTED and reports it", async () => {
  const { admission, events } = setup([worker("a")]);
  admission.acquire(request());
  void admission.acquire(request());
  void admission.acquire(request());
  const err = await (admission.acquire(request()) as Promise<Lease>).catch((e: RpcError) => e);
  expect(err).toBeInstanceOf(RpcError);
  expect((err as RpcError).code()).toBe(Status.RESOURCE_EXHAUSTED);
  expect(events).toContain("queueFull");
});

test("a queued call fails at its deadline, and with CANCELLED when its signal fires; neither takes capacity", async () => {
  const a = worker("a");
  const { admission, leasesOut } = setup([a]);
  admission.acquire(request());
  const timed = admission.acquire(request({ deadline: { at: Date.now() + 500, kind: "per-call" } })) as Promise<Lease>;
  const ac = new AbortController();
  const aborted = admission.acquire(request({ signal: ac.signal })) as Promise<Lease>;
  ac.abort();
  await expect(aborted).rejects.toMatchObject({ category: "cancelled", reachedWorker: false });
  jest.advanceTimersByTime(500);
  await expect(timed).rejects.toMatchObject({ category: "timeout", timeoutKind: "per-call", reachedWorker: false });
  expect(admission.queued).toBe(0);
  expect(leasesOut()).toBe(1);
});

test("a signal already aborted fails at once; with no ready worker the call waits waitForReadyMs, then UNAVAILABLE", async () => {
  const a = worker("a", "starting");
  const { admission } = setup([a]);
  const ac = new AbortController();
  ac.abort();
  await expect(admission.acquire(request({ signal: ac.signal })) as Promise<Lease>).rejects.toMatchObject({ category: "cancelled" });
  const waiting = admission.acquire(request()) as Promise<Lease>;
  jest.advanceTimersByTime(1000);
  await expect(waiting).rejects.toMatchObject({ category: "lifecycle" });
  const granted = admission.acquire(request()) as Promise<Lease>;
  a.state = "ready";
  admission.offer(a);
  expect((await granted).target).toBe(a);
});

test("failWaiting fails every queued call (shutdown)", async () => {
  const { admission } = setup([worker("a")]);
  admission.acquire(request());
  const queued = admission.acquire(request()) as Promise<Lease>;
  admission.failWaiting(new Error("pool is shut down"));
  await expect(queued).rejects.toThrow("pool is shut down");
});
