/** Kill switches (src/resilience/kill-switch.ts) and isolated circuits (circuit-breaker.ts): pure logic, fake timers. */
import { KillSwitch, switchTarget } from "../../src/resilience/kill-switch";
import { CircuitBreaker } from "../../src/resilience/circuit-breaker";
import { isSwitchedOff, RpcError, Status } from "../../src";
import type { Call } from "../../src/call/interceptor";

const callTo = (path: string): Call => ({ kind: "unary", method: { path }, options: { requestId: "r1" } }) as unknown as Call;

describe("switchTarget", () => {
  test("method paths (leading / optional) and service names", () => {
    expect(switchTarget("/a.v1.S/M")).toEqual({ target: "/a.v1.S/M", scope: "method" });
    expect(switchTarget("a.v1.S/M")).toEqual({ target: "/a.v1.S/M", scope: "method" });
    expect(switchTarget(" a.v1.S ")).toEqual({ target: "a.v1.S", scope: "service" });
  });
  test.each(["", "/", "a/b/c", "a..b", "a b", "/a.S/"])("%j is a TypeError", (bad) => {
    expect(() => switchTarget(bad)).toThrow(TypeError);
  });
  test.each(["grpc.health.v1.Health", "/grpc.health.v1.Health/Check", "grpc.reflection.v1alpha.ServerReflection", "procgrpc.internal.v1.PipelineService", "/procgrpc.internal.v1.KillSwitch/Set", "procgrpc.internal.v1.Worker"])(
    "the internal service of %j cannot be switched off",
    (internal) => {
      expect(() => switchTarget(internal)).toThrow(/is an internal service/);
    },
  );
  test("a user's service whose name only starts like an internal one is fine", () => {
    expect(switchTarget("grpc.healthcheck.v1.Mine")).toEqual({ target: "grpc.healthcheck.v1.Mine", scope: "service" });
    expect(switchTarget("procgrpc.demo.v1.S/M")).toEqual({ target: "/procgrpc.demo.v1.S/M", scope: "method" });
  });
});

describe("KillSwitch", () => {
  test("refuses calls to a switched-off method or service without calling next, and lets them through again", async () => {
    const ks = new KillSwitch();
    const log: string[] = [];
    ks.listen({ changed: (t, scope, on) => log.push(`${t} ${scope} ${on}`), refused: (m, t) => log.push(`refused ${m} by ${t}`) });
    let reached = 0;
    const next = async (): Promise<unknown> => (reached += 1, "ok");
    expect(await ks.interceptor(callTo("/a.v1.S/M"), next)).toBe("ok");
    expect(ks.switchOff("a.v1.S/M")).toBe(true);
    expect(ks.switchOff("/a.v1.S/M")).toBe(false);
    const err = await ks.interceptor(callTo("/a.v1.S/M"), next).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code()).toBe(Status.UNAVAILABLE);
    expect((err as RpcError).reachedWorker).toBe(false);
    expect((err as RpcError).retryable).toBe(false);
    expect(isSwitchedOff(err as RpcError)).toBe(true);
    expect(await ks.interceptor(callTo("/a.v1.S/Other"), next)).toBe("ok");
    ks.switchOff("a.v1.S");
    expect(ks.offFor("/a.v1.S/Other")).toBe("a.v1.S");
    expect(ks.offFor("/a.v1.T/M")).toBeUndefined();
    expect(ks.list()).toEqual(["/a.v1.S/M", "a.v1.S"]);
    expect(ks.switchOn("a.v1.S")).toBe(true);
    expect(ks.switchOn("a.v1.S")).toBe(false);
    ks.switchOn("/a.v1.S/M");
    expect(await ks.interceptor(callTo("/a.v1.S/M"), next)).toBe("ok");
    expect(reached).toBe(3);
    expect(log).toEqual(["/a.v1.S/M method false", "refused /a.v1.S/M by /a.v1.S/M", "a.v1.S service false", "a.v1.S service true", "/a.v1.S/M method true"]);
  });
});

describe("CircuitBreaker isolate/close", () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test("isolated lets nothing through, never half-opens, ignores outcomes; close() closes and forgets failures", () => {
    const changes: string[] = [];
    const cb = new CircuitBreaker({ consecutiveFailures: 2, halfOpenAfterMs: 100 }, (from, to) => changes.push(`${from}>${to}`));
    cb.onFailure();
    cb.isolate();
    expect(cb.state).toBe("isolated");
    expect(cb.tryAcquire()).toBe(false);
    jest.advanceTimersByTime(10_000);
    cb.onSuccess();
    cb.onFailure();
    expect(cb.state).toBe("isolated");
    cb.close();
    expect(cb.state).toBe("closed");
    // The failure before the isolation was forgotten: one more does not open it.
    cb.onFailure();
    expect(cb.state).toBe("closed");
    // An open circuit can be isolated too (its half-open timer is cancelled), and force-closed.
    cb.onFailure();
    expect(cb.state).toBe("open");
    cb.isolate();
    jest.advanceTimersByTime(1000);
    expect(cb.state).toBe("isolated");
    cb.close();
    expect(changes).toEqual(["closed>isolated", "isolated>closed", "closed>open", "open>isolated", "isolated>closed"]);
  });
});
