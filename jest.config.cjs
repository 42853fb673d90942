/** Jest runs the TypeScript integration tests against real Python workers (see test/helpers). */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json", diagnostics: { warnOnly: false } }] },
  testTimeout: 60000,
  // Two cores: two test files at a time keeps Python workers from starving each other.
  maxWorkers: 2,
};
