#!/usr/bin/env node
// The `procgrpc` command: runs the CLI compiled into dist/ (npm run build).
Promise.resolve(require("../dist/cli.cjs").main(process.argv.slice(2))).then((code) => {
  process.exitCode = code;
});
