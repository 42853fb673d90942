import type { Readable } from "node:stream";

/**
 * Calls `onLine` for every line a stream produces, without waiting for the stream to end.
 * The stream is always drained (data is never left in the pipe), so a chatty worker can never
 * block on a full pipe. Over-long lines are cut at `maxLine` characters rather than buffered forever.
 */
export function forEachLine(stream: Readable, onLine: (line: string) => void, maxLine = 64 * 1024): void {
  let pending = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    pending += chunk;
    let nl = pending.indexOf("\n");
    while (nl !== -1) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      nl = pending.indexOf("\n");
    }
    if (pending.length > maxLine) {
      onLine(pending.slice(0, maxLine));
      pending = "";
    }
  });
  stream.on("end", () => {
    if (pending.length > 0) onLine(pending);
    pending = "";
  });
}
