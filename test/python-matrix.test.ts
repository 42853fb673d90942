// A real pool round trip with every cell of the Python version matrix (scripts/python-matrix.mjs:
// the lowest and highest Python found, each with python-worker's declared floors and with the
// newest releases, python-worker installed from its wheel): unary, a worker error with rich
// details, and a server stream, on both transports, with the results compared between them.
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { Status, WorkerPool } from "../src";
import { StreamingTestServiceDefinition } from "../src/gen/testing/v1/streaming";
import { FailRequest_Mode, TestServiceDefinition } from "../src/gen/testing/v1/testing";
import { ROOT, WORKERS, rejection, testingPool } from "./helpers/env";

interface MatrixEntry {
  id: string;
  python: string;
  pythonVersion: string;
  deps: "lowest" | "newest";
  versions: Record<string, string>;
}

const MANIFEST = join(ROOT, ".tools", "python-matrix", "manifest.json");
if (!existsSync(MANIFEST)) throw new Error(`${MANIFEST} is missing: run node scripts/setup.mjs`);
const { entries } = JSON.parse(readFileSync(MANIFEST, "utf8")) as { entries: MatrixEntry[] };

const majorMinor = (entry: MatrixEntry): string => entry.pythonVersion.split(".").slice(0, 2).join(".");

async function roundTrip(entry: MatrixEntry, transport: "unary" | "pipelined"): Promise<unknown> {
  const pool = new WorkerPool(testingPool({ workers: 1, python: entry.python, script: join(WORKERS, "streaming_worker.py"), transport }));
  await pool.start();
  try {
    const unary = pool.client(TestServiceDefinition);
    const streams = pool.client(StreamingTestServiceDefinition);
    const echo = await unary.echo({ text: `hello from ${entry.id}`, payload: Buffer.from([0, 1, 255]) });
    const failed = await rejection(unary.fail({ mode: FailRequest_Mode.MODE_RAISE, exception: "procgrpc.errors.NotFound", details: "no such sku" }));
    const counted: number[] = [];
    for await (const message of streams.count({ n: 3 })) counted.push(message.index);
    // The worker runs on the cell's interpreter (the venv's python links to the base one).
    const exe = readlinkSync(`/proc/${pool.health().workers[0].pid}/exe`);
    return {
      echo: { text: echo.text, payload: [...echo.payload] },
      failed: { code: Status[failed.code()], details: failed.details(), category: failed.category, detailKinds: failed.statusDetails.map((d) => d.kind) },
      counted,
      workerPid: echo.workerPid > 0,
      interpreter: exe.includes(`python${majorMinor(entry)}`) || exe.includes(`/${entry.pythonVersion}/`),
    };
  } finally {
    await pool.shutdown();
  }
}

test("the matrix has the lowest and newest dependency sets", () => {
  expect(new Set(entries.map((e) => e.deps))).toEqual(new Set(["lowest", "newest"]));
});

describe.each(entries.map((e) => [e.id, e] as const))("%s", (_id, entry) => {
  test(`grpcio ${entry.versions.grpcio}, protobuf ${entry.versions.protobuf}: unary, rich error and server stream on both transports, same results`, async () => {
    const unary = await roundTrip(entry, "unary");
    const pipelined = await roundTrip(entry, "pipelined");
    expect(unary).toEqual({
      echo: { text: `hello from ${entry.id}`, payload: [0, 1, 255] },
      failed: { code: "NOT_FOUND", details: "no such sku", category: "worker", detailKinds: expect.arrayContaining(["ErrorInfo"]) as unknown },
      counted: [0, 1, 2],
      workerPid: true,
      interpreter: true,
    });
    expect(pipelined).toEqual(unary);
  });
});
