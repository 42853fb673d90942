import { loadOnUse } from "./load-on-use";

/**
 * `@grpc/grpc-js`, loaded when the first channel is made rather than at `import "procgrpc"`
 * (it is most of procgrpc's import time). Import its types with `import type`; `Metadata`
 * comes from ./grpc-metadata without loading the rest.
 */
export const grpcJs = loadOnUse<typeof import("@grpc/grpc-js")>("@grpc/grpc-js");
