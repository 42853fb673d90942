// The Python server's own concurrency limit is a backstop behind the pool's maxInFlightPerWorker:
// it must never refuse a call the pool admitted, even when bursts of large requests arrive
// faster than grpc.aio releases finished calls (found by the benchmark at 64 x 64 KiB).
import { join } from "node:path";
import { WorkerPool } from "../src";
import { BenchServiceDefinition } from "../src/gen/bench/v1/bench";
import { ROOT, testingPool } from "./helpers/env";

test.each(["unary", "pipelined"] as const)("64 callers of 64 KiB on one worker at its limit: no call refused (%s)", async (transport) => {
  const pool = new WorkerPool(testingPool({ workers: 1, script: join(ROOT, "bench", "bench_worker.py"), transport, maxInFlightPerWorker: 64, maxQueue: 10_000 }));
  await pool.start();
  try {
    const client = pool.client(BenchServiceDefinition);
    const payload = Buffer.alloc(65536, 3);
    const until = Date.now() + 2000;
    const failures: string[] = [];
    let ok = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (Date.now() < until) {
          try {
            await client.echo({ payload });
            ok++;
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      }),
    );
    expect(failures.slice(0, 3)).toEqual([]);
    expect(ok).toBeGreaterThan(0);
  } finally {
    await pool.shutdown();
  }
});
