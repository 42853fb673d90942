import { createRequire } from "node:module";

/**
 * Loads a dependency on first use rather than at `import "procgrpc"`: for modules only some
 * features need (proto-loader for dynamic clients, @bufbuild/protobuf for the hang watchdog's
 * introspection), which would otherwise cost every user their import time. Works in the
 * CommonJS and the ESM build (tsup shims `__filename`).
 */
export function loadOnUse<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= createRequire(__filename)(specifier) as T);
}
