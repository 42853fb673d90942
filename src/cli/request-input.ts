import { createReadStream, existsSync, statSync } from "node:fs";
import { createInterface, type Interface } from "node:readline";
import type { Readable } from "node:stream";
import type { JsonValue } from "@bufbuild/protobuf";
import { usageError } from "./usage-error";

/**
 * Where `procgrpc call` takes its request messages from, grpcurl-style: a `--data` value, a
 * `--data-file`, or stdin (`--data @`, `--data-file -`, and by default for client and
 * bidirectional streams). A stream of requests is NDJSON (one JSON message a line, blank lines
 * skipped), read as it arrives so a bidirectional call can be driven line by line.
 */
export type RequestSourceSpec = { readonly from: "inline"; readonly json: JsonValue } | { readonly from: "file"; readonly path: string } | { readonly from: "stdin" } | { readonly from: "none" };

/** A request line that is not JSON or not a message of the method's type: bad input, exit code 2. */
export class RequestInputError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "RequestInputError";
  }
}

/** Reads `--data` / `--data-file` into a spec, or throws a usage error (checked before any worker starts). */
export function requestSourceSpec(data: string | undefined, dataFile: string | undefined, usage: string): RequestSourceSpec {
  if (data !== undefined && dataFile !== undefined) throw usageError("give --data or --data-file, not both", usage);
  if (data === "@" || dataFile === "-") return { from: "stdin" };
  if (dataFile !== undefined) {
    if (!existsSync(dataFile) || statSync(dataFile).isDirectory()) throw usageError(`--data-file ${dataFile}: no such file`, usage);
    return { from: "file", path: dataFile };
  }
  if (data === undefined) return { from: "none" };
  try {
    return { from: "inline", json: JSON.parse(data) as JsonValue };
  } catch (e) {
    throw usageError(`--data is not valid JSON: ${(e as Error).message}`, usage);
  }
}

/** Checks one request message against the method's input type; throws an Error naming the problem. */
export type RequestCheck = (json: JsonValue) => void;

function labelOf(spec: RequestSourceSpec): string {
  return spec.from === "file" ? `--data-file ${spec.path}` : spec.from === "stdin" ? "stdin" : "--data";
}

function streamOf(spec: RequestSourceSpec, stdin: Readable): Readable {
  return spec.from === "file" ? createReadStream(spec.path) : stdin;
}

/**
 * The one request of a unary or server-streaming call: `--data` (default `{}`), or the whole of
 * the file or stdin as one JSON value.
 */
export async function singleRequest(spec: RequestSourceSpec, stdin: Readable, check: RequestCheck): Promise<JsonValue> {
  let json: JsonValue;
  if (spec.from === "inline" || spec.from === "none") {
    json = spec.from === "inline" ? spec.json : {};
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of streamOf(spec, stdin)) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
    const text = Buffer.concat(chunks).toString("utf8");
    try {
      json = JSON.parse(text) as JsonValue;
    } catch (e) {
      throw new RequestInputError(`${labelOf(spec)} is not one JSON message: ${(e as Error).message}`);
    }
  }
  try {
    check(json);
  } catch (e) {
    throw new RequestInputError(`${labelOf(spec)}: ${(e as Error).message}`);
  }
  return json;
}

/** The requests of a client or bidirectional call, and how to stop reading them. */
export interface RequestLines {
  readonly requests: AsyncIterable<JsonValue> | Iterable<JsonValue>;
  /** Stops reading (the call is over, or was interrupted): the iteration ends. */
  close(): void;
}

/**
 * The requests of a client-streaming or bidirectional call: `--data` as the only one, or NDJSON
 * from the file or stdin, each line checked before it is sent. A bad line fails the call with a
 * `RequestInputError` (as the `cause` of its CANCELLED error) naming the line.
 */
export function requestLines(spec: RequestSourceSpec, stdin: Readable, check: RequestCheck): RequestLines {
  if (spec.from === "inline") {
    try {
      check(spec.json);
    } catch (e) {
      throw new RequestInputError(`--data: ${(e as Error).message}`);
    }
    return { requests: [spec.json], close: () => undefined };
  }
  const source = spec.from === "none" ? ({ from: "stdin" } as const) : spec;
  const input = streamOf(source, stdin);
  const lines: Interface = createInterface({ input, crlfDelay: Infinity });
  const label = labelOf(source);
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    lines.close();
    input.destroy();
  };
  async function* parse(): AsyncGenerator<JsonValue> {
    let n = 0;
    try {
      for await (const line of lines) {
        n += 1;
        if (!line.trim()) continue;
        let json: JsonValue;
        try {
          json = JSON.parse(line) as JsonValue;
        } catch (e) {
          throw new RequestInputError(`${label} line ${n} is not valid JSON: ${(e as Error).message}`);
        }
        try {
          check(json);
        } catch (e) {
          throw new RequestInputError(`${label} line ${n}: ${(e as Error).message}`);
        }
        yield json;
      }
    } finally {
      close();
    }
  }
  return { requests: parse(), close };
}
