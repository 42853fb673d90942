// Measures the Python worker's server flavour: grpc.aio with `async def`, grpc.aio with `def`
// (procgrpc's thread-pool path), and a plain synchronous grpcio server, all driven by the same
// raw grpc-js client over a Unix socket. `npx tsx bench/server-flavour.ts`
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, credentials } from "@grpc/grpc-js";
import { WorkerPool, silentLogger } from "../src";
import { AsyncEchoRequest, AsyncEchoResponse, EchoRequest, EchoResponse } from "../src/gen/testing/v1/testing";
import { LOCAL_CHANNEL_OPTIONS } from "../src/pool/worker-process";
import { benchDir, repoRoot } from "./lib/paths";

const root = repoRoot;
const python = join(root, ".venv", "bin", "python");

type Call = () => Promise<unknown>;

function unary(client: Client, path: string, encode: () => Buffer, decode: (b: Buffer) => unknown): Call {
  return () =>
    new Promise((resolve, reject) =>
      client.makeUnaryRequest(path, (b: Buffer) => b, decode, encode(), (err, res) => (err ? reject(err) : resolve(res))),
    );
}

async function measure(name: string, call: Call): Promise<{ name: string; p50us: number; p99us: number; callsPerSec: number }> {
  for (let i = 0; i < 2000; i++) await call(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const t = process.hrtime.bigint();
    await call();
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  samples.sort((a, b) => a - b);
  const until = Date.now() + 3000;
  let done = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (Date.now() < until) {
        await call();
        done++;
      }
    }),
  );
  return { name, p50us: Math.round(samples[1500]), p99us: Math.round(samples[2970]), callsPerSec: Math.round(done / 3) };
}

async function main(): Promise<void> {
  const echo = Buffer.from(EchoRequest.encode({ text: "0123456789abcdef", payload: Buffer.alloc(0) }).finish());
  const asyncEcho = Buffer.from(AsyncEchoRequest.encode({ text: "0123456789abcdef" }).finish());
  const results = [];

  const pool = new WorkerPool({ workers: 1, python, script: join(root, "test", "workers", "testing_worker.py"), logger: silentLogger, maxInFlightPerWorker: 64 });
  await pool.start();
  const socket = pool.health().workers[0].socket;
  const aio = new Client(`unix:${socket}`, credentials.createInsecure(), LOCAL_CHANNEL_OPTIONS);
  results.push(await measure("grpc.aio + async def (procgrpc)", unary(aio, "/testing.v1.TestService/AsyncEcho", () => asyncEcho, (b) => AsyncEchoResponse.decode(b))));
  results.push(await measure("grpc.aio + def in thread pool (procgrpc)", unary(aio, "/testing.v1.TestService/Echo", () => echo, (b) => EchoResponse.decode(b))));
  aio.close();
  await pool.shutdown();

  const dir = mkdtempSync(join(tmpdir(), "flavour-"));
  const sock = join(dir, "sync.sock");
  const server = spawn(python, [join(benchDir, "flavour_sync_server.py"), sock], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve) => server.stdout.once("data", resolve));
  const sync = new Client(`unix:${sock}`, credentials.createInsecure(), LOCAL_CHANNEL_OPTIONS);
  results.push(await measure("plain sync grpcio server + def (no procgrpc)", unary(sync, "/testing.v1.TestService/Echo", () => echo, (b) => EchoResponse.decode(b))));
  sync.close();
  server.kill();
  rmSync(dir, { recursive: true, force: true });

  console.table(results);
}

void main();
