// The portable process mechanisms (what macOS gets), forced on Linux with PROCGRPC_PORTABLE=1:
// resident memory from `ps`, the 103-byte socket path limit. (Parent death without
// PR_SET_PDEATHSIG is in lifecycle.test.ts and python-worker/tests/test_lifecycle.py.)
import { rmSync } from "node:fs";
import { join } from "node:path";
import { WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { residentMemoryMb } from "../src/pool/resident-memory";
import { MAX_SOCKET_PATH_BYTES_BSD, maxSocketPathBytes } from "../src/pool/socket-dir";
import { testingPool } from "./helpers/env";
import { nextEvent } from "./helpers/supervision";

jest.setTimeout(60_000);

const saved = process.env.PROCGRPC_PORTABLE;
afterEach(() => {
  if (saved === undefined) delete process.env.PROCGRPC_PORTABLE;
  else process.env.PROCGRPC_PORTABLE = saved;
});

test("resident memory from ps agrees with /proc, and is undefined for a process that is gone", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1 }));
  await pool.start();
  try {
    const pid = pool.health().workers[0].pid as number;
    delete process.env.PROCGRPC_PORTABLE;
    const fromProc = residentMemoryMb(pid) as number;
    process.env.PROCGRPC_PORTABLE = "1";
    const fromPs = residentMemoryMb(pid) as number;
    expect(fromProc).toBeGreaterThan(5);
    expect(Math.abs(fromPs - fromProc)).toBeLessThanOrEqual(Math.max(2, fromProc * 0.1));
  } finally {
    await pool.shutdown();
  }
  process.env.PROCGRPC_PORTABLE = "1";
  expect(residentMemoryMb(2 ** 22 + 1)).toBeUndefined();
});

test("on the portable path maxMemoryMb still recycles a leaking worker (memory sampled with ps)", async () => {
  process.env.PROCGRPC_PORTABLE = "1";
  const pool = new WorkerPool(testingPool({ workers: 1, maxMemoryMb: 150, healthCheckIntervalMs: 100 }));
  await pool.start();
  try {
    const old = pool.health().workers[0];
    expect(old.rssMb).toBeGreaterThan(5);
    const recycled = nextEvent(pool, "workerRecycled", () => true, 30_000);
    await pool.client(TestServiceDefinition).leak({ mb: 200 });
    expect(await recycled).toMatchObject({ workerId: "w0", oldPid: old.pid, reason: "memory" });
  } finally {
    await pool.shutdown();
  }
});

test("the socket path limit is the platform's: 103 bytes on the portable path (macOS), 107 on Linux", () => {
  // A socketDir whose longest socket path is 104..107 bytes: fine on Linux, too long for macOS.
  const longest = (dir: string): number => Buffer.byteLength(join(dir, "procgrpc-4194304-abcdef-w1-999999.sock"));
  let dir = "/tmp/pgp-";
  while (longest(dir) < 105) dir += "d";
  delete process.env.PROCGRPC_PORTABLE;
  expect(maxSocketPathBytes()).toBe(107);
  expect(() => new WorkerPool(testingPool({ workers: 2, socketDir: dir })).shutdown()).not.toThrow();
  process.env.PROCGRPC_PORTABLE = "1";
  expect(maxSocketPathBytes()).toBe(MAX_SOCKET_PATH_BYTES_BSD);
  expect(() => new WorkerPool(testingPool({ workers: 2, socketDir: dir }))).toThrow(/over the Unix limit of 103 on linux: .*shorter socketDir/);
  rmSync(dir, { recursive: true, force: true }); // construction created the directory it validated
});
