import { defineConfig } from "tsup";

// The library ships as ESM and CommonJS with type declarations; the CLI as CommonJS only
// (it resolves the buf and ts-proto binaries with require.resolve).
export default defineConfig([
  {
    entry: { index: "src/index.ts" },
    format: ["esm", "cjs"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node20",
    outExtension: ({ format }) => ({ js: format === "esm" ? ".mjs" : ".cjs" }),
  },
  {
    entry: { cli: "src/cli/main.ts" },
    format: ["cjs"],
    sourcemap: true,
    target: "node20",
    outExtension: () => ({ js: ".cjs" }),
  },
]);
