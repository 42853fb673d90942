/**
 * The layers of src/ (docs/architecture.md): imports run one way, and nothing imports in a
 * circle. `npm run lint:layers` checks it (part of `npm test`).
 *
 *   core ← call ← transport, resilience ← client ← pool, remote ← observability, cli
 */
const layers = ["core", "call", "transport|resilience", "client", "pool|remote", "observability|cli"];
const above = (i) => layers.slice(i + 1).join("|");

module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", comment: "An import circle ties modules that should be layered.", from: {}, to: { circular: true } },
    ...layers.slice(0, -1).map((layer, i) => ({
      name: `layer-${layer.replace("|", "-")}`,
      severity: "error",
      comment: `src/${layer} may not import from a layer above it (${above(i)}).`,
      from: { path: `^src/(${layer})/` },
      to: { path: `^src/(${above(i)})/` },
    })),
    { name: "transport-not-resilience", severity: "error", comment: "transport and resilience are siblings.", from: { path: "^src/transport/" }, to: { path: "^src/resilience/" } },
    { name: "resilience-not-transport", severity: "error", comment: "transport and resilience are siblings.", from: { path: "^src/resilience/" }, to: { path: "^src/transport/" } },
    { name: "remote-not-pool", severity: "error", comment: "RemotePool shares the client surface, not the local pool.", from: { path: "^src/remote/" }, to: { path: "^src/pool/" } },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/gen/" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
  },
};
