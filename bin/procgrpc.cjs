#!/usr/bin/env node
// The `procgrpc` command: runs the CLI compiled into dist/ (npm run build).
process.exitCode = require("../dist/cli.cjs").main(process.argv.slice(2));
