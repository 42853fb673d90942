// What going remote costs per call, measured on one machine: the same Echo through WorkerPool
// (Unix socket) and through RemotePool over loopback TCP, plaintext and TLS (+ bearer token).
// Rounds are interleaved so that other load on the machine hits every transport alike; the
// ratios are the result to read, not the absolute numbers. `npx tsx bench/remote-cost.ts`
import { join } from "node:path";
import { RemotePool, WorkerPool, silentLogger } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { makePki } from "../test/helpers/certs";
import { startRemoteWorker } from "../test/helpers/remote-worker";
import { repoRoot } from "./lib/paths";

const ROUNDS = 5;
const SEQUENTIAL = 1000;
const CONCURRENT_MS = 1500;
const CONCURRENCY = 16;

type Echo = (req: { text: string }) => Promise<unknown>;

async function round(echo: Echo): Promise<{ samples: number[]; perSec: number }> {
  const samples: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t = process.hrtime.bigint();
    await echo({ text: "x" });
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  let done = 0;
  const until = Date.now() + CONCURRENT_MS;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < until) {
      await echo({ text: "x" });
      done++;
    }
  }));
  return { samples, perSec: (done * 1000) / CONCURRENT_MS };
}

const pct = (s: number[], p: number): number => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];

async function main(): Promise<void> {
  const pki = makePki(["IP:127.0.0.1"]);
  const token = "bench-token";
  const python = join(repoRoot, ".venv", "bin", "python");
  const script = join(repoRoot, "test", "workers", "testing_worker.py");
  const local = new WorkerPool({ workers: 1, python, script, logger: silentLogger });
  const tlsWorker = await startRemoteWorker({ args: ["--listen", "127.0.0.1:0"], env: { PROCGRPC_TLS_CERT: pki.server.cert, PROCGRPC_TLS_KEY: pki.server.key, PROCGRPC_TOKEN: token } });
  const plainWorker = await startRemoteWorker({ args: ["--listen", "127.0.0.1:0"] });
  const tls = new RemotePool({ targets: [tlsWorker.listen], tls: { ca: pki.read(pki.ca.cert) }, token, logger: silentLogger });
  const plain = new RemotePool({ targets: [plainWorker.listen], logger: silentLogger });
  await Promise.all([local.start(), tls.start(), plain.start()]);
  const subjects: [string, Echo][] = [
    ["unix socket (WorkerPool)", local.client(TestServiceDefinition).echo],
    ["loopback TCP plaintext (RemotePool)", plain.client(TestServiceDefinition).echo],
    ["loopback TCP + TLS + token (RemotePool)", tls.client(TestServiceDefinition).echo],
  ];
  for (const [, echo] of subjects) for (let i = 0; i < 500; i++) await echo({ text: "warm" });
  const results = new Map<string, { samples: number[]; perSec: number[] }>(subjects.map(([n]) => [n, { samples: [], perSec: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, echo] of subjects) {
      const { samples, perSec } = await round(echo);
      const acc = results.get(name)!;
      acc.samples.push(...samples);
      acc.perSec.push(perSec);
    }
  }
  const base = results.get(subjects[0][0])!;
  base.samples.sort((a, b) => a - b);
  const baseP50 = pct(base.samples, 50);
  const basePerSec = base.perSec.reduce((a, b) => a + b) / base.perSec.length;
  console.log(`| transport | p50 µs | p99 µs | p50 vs unix | calls/s at ${CONCURRENCY} in flight | throughput vs unix |`);
  console.log("|---|---|---|---|---|---|");
  for (const [name] of subjects) {
    const { samples, perSec } = results.get(name)!;
    samples.sort((a, b) => a - b);
    const mean = perSec.reduce((a, b) => a + b) / perSec.length;
    console.log(`| ${name} | ${pct(samples, 50).toFixed(0)} | ${pct(samples, 99).toFixed(0)} | ${(pct(samples, 50) / baseP50).toFixed(2)}× | ${mean.toFixed(0)} | ${(mean / basePerSec).toFixed(2)}× |`);
  }
  await Promise.all([local.shutdown(), tls.shutdown(), plain.shutdown()]);
  await Promise.all([tlsWorker.stop(), plainWorker.stop()]);
  pki.remove();
}

void main();
