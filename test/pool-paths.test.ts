// The pool's `python` and `script` options resolve like a shell in the workers' working
// directory: a relative path against `cwd` (default process.cwd()), a bare interpreter name on
// PATH; and a start failure names the path that was tried.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { WorkerPool, WorkerStartError } from "../src";
import { TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { PYTHON, ROOT, WORKERS, testingPool } from "./helpers/env";

async function startFailure(pool: WorkerPool): Promise<WorkerStartError> {
  const err = await pool.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  await pool.shutdown();
  if (!(err instanceof WorkerStartError)) throw new Error(`expected a WorkerStartError, got ${String(err)}`);
  return err;
}

test("relative python and script resolve against the pool's cwd", async () => {
  const elsewhere = mkdtempSync(join(tmpdir(), "procgrpc-paths-"));
  const pool = new WorkerPool(testingPool({ workers: 1, cwd: ROOT, python: relative(ROOT, PYTHON), script: relative(ROOT, join(WORKERS, "testing_worker.py")) }));
  try {
    // The pool is defined against ROOT; the process's own directory does not matter.
    const before = process.cwd();
    process.chdir(elsewhere);
    try {
      await pool.start();
    } finally {
      process.chdir(before);
    }
    const reply = await pool.client(TestServiceDefinition).echo({ text: "relative" });
    expect(reply.text).toBe("relative");
  } finally {
    await pool.shutdown();
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test("without cwd, relative paths resolve against process.cwd() when the pool is constructed", async () => {
  const before = process.cwd();
  process.chdir(ROOT);
  let pool: WorkerPool;
  try {
    pool = new WorkerPool(testingPool({ workers: 1, python: ".venv/bin/python", script: "test/workers/testing_worker.py" }));
  } finally {
    process.chdir(before);
  }
  try {
    await pool.start();
    expect((await pool.client(TestServiceDefinition).echo({ text: "cwd" })).text).toBe("cwd");
  } finally {
    await pool.shutdown();
  }
});

test("a missing relative python is reported with the absolute path tried", async () => {
  const err = await startFailure(new WorkerPool(testingPool({ workers: 1, cwd: ROOT, python: "no-venv/bin/python" })));
  expect(err.message).toContain(`could not run ${join(ROOT, "no-venv", "bin", "python")}`);
  expect(err.message).toContain("check the `python` option");
});

test("a missing relative script is reported with the absolute path tried", async () => {
  const err = await startFailure(new WorkerPool(testingPool({ workers: 1, cwd: ROOT, script: "no-such-worker.py" })));
  expect(err.stderrTail.join("\n")).toContain(join(ROOT, "no-such-worker.py"));
  expect(err.command).toContain(join(ROOT, "no-such-worker.py"));
});

test("a working directory that does not exist is named as such", async () => {
  const missing = join(tmpdir(), "procgrpc-no-such-dir", "x");
  const err = await startFailure(new WorkerPool(testingPool({ workers: 1, cwd: missing })));
  expect(err.message).toContain(`the working directory ${missing} does not exist`);
});
