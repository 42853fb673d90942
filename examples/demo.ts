// `npm run demo`: a pool of two Python workers serving demo.v1.DemoService, a few typed calls,
// and one handled error (INVALID_ARGUMENT raised with context.abort in Python).
// In your own project, import from "procgrpc" and from your generated stubs instead.
import { join } from "node:path";
import { RpcError, Status, WorkerPool, jsonLogger } from "../src";
import { DemoServiceDefinition } from "../src/gen/demo/v1/demo";

async function main(): Promise<void> {
  const pool = new WorkerPool({
    workers: 2,
    python: process.env.PROCGRPC_PYTHON ?? join(__dirname, "..", ".venv", "bin", "python"),
    script: join(__dirname, "demo_worker.py"),
    logger: jsonLogger("warn"),
  });
  const started = Date.now();
  await pool.start();
  console.log(`pool ready in ${Date.now() - started} ms:`);
  for (const w of pool.health().workers) console.log(`  ${w.id}  pid ${w.pid}  ${w.socket}`);

  const demo = pool.client(DemoServiceDefinition);
  try {
    const replies = await Promise.all(["hello", "from", "node"].map((text) => demo.echo({ text }, { timeoutMs: 1000 })));
    for (const r of replies) console.log(`echo: ${JSON.stringify(r.text)} answered by python pid ${r.workerPid}`);

    const { quotient } = await demo.divide({ dividend: 22, divisor: 7 });
    console.log(`divide: 22 / 7 = ${quotient.toFixed(4)}`);

    const words = await demo.wordCount({ text: "the quick brown fox jumps over the lazy dog the end" });
    console.log(`wordCount: ${words.total} words, "the" x${words.counts.the}`);

    let text = "";
    for await (const { token } of demo.generate({ prompt: "tokens arrive one by one", maxTokens: 8 })) text += token;
    console.log(`generate (server stream):${text}`);

    async function* file(): AsyncGenerator<{ chunk: Buffer }> {
      for (let i = 0; i < 16; i++) yield { chunk: Buffer.alloc(64 * 1024, i) };
    }
    const upload = await demo.upload(file());
    console.log(`upload (client stream): ${upload.chunks} chunks, ${upload.size} bytes, sha256 ${upload.sha256.slice(0, 16)}…`);

    try {
      await demo.divide({ dividend: 3, divisor: 0 });
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      console.log(`handled error: code=${Status[err.code()]} category=${err.category} retryable=${err.retryable}`);
      console.log(`  details: ${err.details()}`);
      console.log(`  message: ${err.message}`);
    }
  } finally {
    await pool.shutdown();
    console.log("pool shut down: no worker process or socket left");
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
