import { defineConfig } from "tsup";

// The library ships as ESM and CommonJS with type declarations; the CLI as CommonJS only.
// No source maps: they would point at src/, which the package does not ship (and they were half
// the tarball); stack traces name dist/ files, which users have.
export default defineConfig([
  {
    entry: { index: "src/index.ts" },
    format: ["esm", "cjs"],
    dts: true,
    sourcemap: false,
    clean: true,
    // __filename in the ESM build too (prometheus-endpoint.ts resolves optional peers from it).
    shims: true,
    target: "node22",
    outExtension: ({ format }) => ({ js: format === "esm" ? ".mjs" : ".cjs" }),
  },
  {
    entry: { cli: "src/cli/main.ts" },
    format: ["cjs"],
    sourcemap: false,
    target: "node22",
    outExtension: () => ({ js: ".cjs" }),
  },
]);
