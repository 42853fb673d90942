// `npm run demo` must keep working: run examples/demo.ts as a user would and check what it prints.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./helpers/env";

test("examples/demo.ts runs the demo end to end", () => {
  const out = execFileSync(process.execPath, ["--import", "tsx", join(ROOT, "examples", "demo.ts")], { cwd: ROOT, encoding: "utf8" });
  expect(out).toMatch(/pool ready in \d+ ms/);
  expect(out).toMatch(/echo: "hello" answered by python pid \d+/);
  expect(out).toContain("divide: 22 / 7 = 3.1429");
  expect(out).toContain("generate (server stream): tokens arrive one by one");
  expect(out).toContain("upload (client stream): 16 chunks, 1048576 bytes");
  expect(out).toContain("handled error: code=INVALID_ARGUMENT category=worker retryable=false");
  expect(out).toContain("pool shut down");
});
