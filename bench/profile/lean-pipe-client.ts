// Splits the pipelined call's Node cost: the procgrpc pool's own layers vs the protocol. A lean
// client writes PipeRequest messages straight onto a real procgrpc worker's Pipe stream (one call
// per message, no deadline timer, no request id, no metadata, no admission, no watchdog), next to
// the pool's own client on the same worker and the bare gRPC stream. Sequential 16 B echo:
//   npx tsx bench/profile/lean-pipe-client.ts [--rounds 2]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Client, credentials, Metadata } from "@grpc/grpc-js";
import { WorkerPool, silentLogger } from "../../src";
import { BenchServiceDefinition, EchoRequest, EchoResponse } from "../../src/gen/bench/v1/bench";
import { PipeRequest, PipeResponse } from "../../src/gen/procgrpc/internal/v1/pipeline";
import { LOCAL_LIKE_CHANNEL_OPTIONS, bareStreamCall, startBareStreamServer } from "../lib/bare-stream";
import { processCpuSeconds, type Call } from "../lib/measure";
import { repoRoot } from "../lib/paths";

const root = repoRoot;
const python = join(root, ".venv", "bin", "python");
const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "2" }, timeout: { type: "boolean", default: false } } });

async function run(name: string, call: Call, pid: number): Promise<void> {
  for (let i = 0; i < 1500; i++) await call();
  const n = 4000;
  const lat: number[] = [];
  const c0 = process.cpuUsage();
  const s0 = processCpuSeconds(pid);
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await call();
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  const c = process.cpuUsage(c0);
  const s = processCpuSeconds(pid) - s0;
  lat.sort((a, b) => a - b);
  process.stdout.write(`| ${name} | ${lat[n >> 1].toFixed(0)} | ${(c.user / n).toFixed(1)} | ${(c.system / n).toFixed(1)} | ${((s * 1e6) / n).toFixed(0)} |\n`);
}

async function main(): Promise<void> {
  const payload = Buffer.alloc(16, 7);
  const pool = new WorkerPool({ workers: 1, python, script: join(root, "bench", "bench_worker.py"), logger: silentLogger });
  await pool.start();
  const worker = pool.health().workers[0];
  const client = pool.client(BenchServiceDefinition);
  // The lean client on a channel of its own to the same worker.
  const channel = new Client(`unix:${worker.socket}`, credentials.createInsecure(), LOCAL_LIKE_CHANNEL_OPTIONS);
  const stream = channel.makeBidiStreamRequest(
    "/procgrpc.internal.v1.PipelineService/Pipe",
    (r: PipeRequest) => Buffer.from(PipeRequest.encode(r).finish()),
    (b: Buffer) => PipeResponse.decode(b),
    new Metadata(),
  );
  const waiting = new Map<number, () => void>();
  stream.on("data", (res: PipeResponse) => {
    for (const r of res.results) {
      EchoResponse.decode(r.payload);
      waiting.get(r.callId)?.();
      waiting.delete(r.callId);
    }
  });
  let id = 1;
  const lean: Call = () =>
    new Promise<void>((resolve) => {
      const callId = id++;
      waiting.set(callId, resolve);
      stream.write({ calls: [{ callId, method: "/bench.v1.BenchService/Echo", payload: Buffer.from(EchoRequest.encode({ payload }).finish()), timeoutUs: args.timeout ? 30_000_000 : 0, metadata: [], requestId: "", attemptId: "" }], cancel: [] });
    });
  const bare = await startBareStreamServer(python, join(root, "bench", "bare_stream_server.py"), `/tmp/pglean-bare-${process.pid}.sock`);
  const bareCall = await bareStreamCall([bare.socket], payload);
  process.stdout.write("| client (sequential 16 B echo) | p50 µs | Node user µs/call | Node sys µs/call | server CPU µs/call |\n|---|---|---|---|---|\n");
  for (let r = 0; r < Number(args.rounds); r++) {
    await run("procgrpc pool client (pipelined)", () => client.echo({ payload }), worker.pid as number);
    await run(`lean PipeRequest client, same worker${args.timeout ? " (with timeout_us)" : ""}`, lean, worker.pid as number);
    await run("bare gRPC stream", bareCall.call, bare.pid);
  }
  stream.end();
  channel.close();
  bareCall.close();
  bare.stop();
  await pool.shutdown();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
