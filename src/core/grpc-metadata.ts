/**
 * grpc-js's `Metadata` class, taken from its own module: it is the very class object that
 * `@grpc/grpc-js` exports (`instanceof` holds both ways), but importing it does not load the rest
 * of grpc-js (about 70 ms). grpc-js itself loads when the first channel is made.
 */
export { Metadata } from "@grpc/grpc-js/build/src/metadata.js";
export type { MetadataValue } from "@grpc/grpc-js/build/src/metadata.js";
