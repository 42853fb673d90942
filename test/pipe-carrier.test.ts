/**
 * The pipelined transport's carriers: the socket pair a worker is spawned with (the default) and
 * the worker's `Pipe` gRPC stream. Which one a pool uses, the fallback to the gRPC stream (a
 * worker of an older procgrpc, a pipe a servicer corrupted), and that the answers are the same.
 * The conformance suite compares the carriers call by call.
 */
import { join } from "node:path";
import { RpcError, Status, WorkerPool } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { SocketPipeStream } from "../src/transport/socket-pipe-stream";
import { testingPool, WORKERS } from "./helpers/env";

/** The carriers of the pool's open pipelines ("socket-pair" or "grpc-stream"). */
function carriers(pool: WorkerPool): string[] {
  const pipelines = (pool as unknown as { pipelines: Map<unknown, { stream: unknown }> }).pipelines;
  return [...pipelines.values()].map((p) => (p.stream instanceof SocketPipeStream ? "socket-pair" : "grpc-stream"));
}

const script = join(WORKERS, "pipe_carrier_worker.py");
const payload = Buffer.from("carried");

test("pipelined calls take the worker's socket pair by default, the gRPC stream when asked; the answers are the same", async () => {
  const socketPool = new WorkerPool(testingPool({ workers: 1, script, transport: "pipelined" }));
  const streamPool = new WorkerPool(testingPool({ workers: 1, script, transport: "pipelined", pipelineCarrier: "grpc-stream" }));
  await Promise.all([socketPool.start(), streamPool.start()]);
  try {
    const [a, b] = await Promise.all([socketPool, streamPool].map((p) => p.client(TestServiceDefinition).echo({ text: "x", payload }, { requestId: "same" })));
    expect(carriers(socketPool)).toEqual(["socket-pair"]);
    expect(carriers(streamPool)).toEqual(["grpc-stream"]);
    // The attempt id (procgrpc-call-id) is the pool's own; everything else the servicer saw is the same.
    const seen = (r: typeof a) => ({ ...r, workerPid: 0, timeRemainingSeconds: 0, metadata: { ...r.metadata, "procgrpc-call-id": "" } });
    expect(seen(a)).toEqual(seen(b));
    expect(Object.keys(a.metadata).sort()).toEqual(["procgrpc-call-id", "x-request-id"]);
  } finally {
    await Promise.all([socketPool.shutdown(), streamPool.shutdown()]);
  }
});

test("a worker of an older procgrpc, which does not serve the socket pair, gets the gRPC stream; start and shutdown are unaffected", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, script, env: { PIPE_CARRIER_MODE: "old" } }));
  await pool.start();
  try {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.client(TestServiceDefinition).echo({ text: `old-${i}` })));
    expect(answers.map((r) => r.text)).toEqual(Array.from({ length: 20 }, (_, i) => `old-${i}`));
    expect(carriers(pool)).toEqual(["grpc-stream"]);
  } finally {
    await pool.shutdown();
  }
});

test("garbage on the socket pair: the call waiting on it fails with UNAVAILABLE naming what came; the worker serves on, its calls on the gRPC stream", async () => {
  const pool = new WorkerPool(testingPool({ workers: 1, script }));
  await pool.start();
  try {
    const client = pool.client(TestServiceDefinition);
    const pid = (await client.echo({ text: "before" })).workerPid;
    const err = (await client.echo({ text: "garbage-on-pipe" }).catch((e: unknown) => e)) as RpcError;
    expect(err).toBeInstanceOf(RpcError);
    expect(err.code()).toBe(Status.UNAVAILABLE);
    expect(err.category).toBe("connection");
    expect(err.reachedWorker).toBe(true);
    expect(err.details()).toContain("longer than any protobuf message");
    const after = await client.echo({ text: "after" });
    expect(after).toMatchObject({ text: "after", workerPid: pid });
    expect(carriers(pool)).toEqual(["grpc-stream"]);
  } finally {
    await pool.shutdown();
  }
});
