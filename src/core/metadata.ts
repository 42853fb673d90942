import { Metadata } from "@grpc/grpc-js";
import type { CallOptions, MetadataInit } from "../call/call-options";

/** A copy of `options` whose metadata also carries `entries` (the caller's own values win for the same key only when `keepExisting`). */
export function withMetadata(options: CallOptions, entries: Readonly<Record<string, string>>, keepExisting = false): CallOptions {
  const init: MetadataInit | undefined = options.metadata;
  let metadata: MetadataInit;
  if (init instanceof Metadata) {
    const md = init.clone();
    for (const [k, v] of Object.entries(entries)) if (!keepExisting || md.get(k).length === 0) md.set(k, v);
    metadata = md;
  } else {
    metadata = keepExisting ? { ...entries, ...init } : { ...init, ...entries };
  }
  return { ...options, metadata };
}
