#!/usr/bin/env node
// Runs the Python worker's tests with the project's virtualenv (set up by scripts/setup.mjs).
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const r = spawnSync(join(root, ".venv", "bin", "python"), ["-m", "pytest", "python-worker/tests", "-q", ...process.argv.slice(2)], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
