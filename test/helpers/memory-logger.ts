import type { Logger } from "../../src";

/** One line a `memoryLogger` received. */
export interface LogEntry {
  level: "debug" | "info" | "warn" | "error";
  msg: string | undefined;
  fields: Record<string, unknown>;
}

/** A Logger that keeps every line in memory, for tests that assert on what was logged. */
export function memoryLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: LogEntry["level"]) => (fields: Record<string, unknown>, msg?: string) => {
    entries.push({ level, msg, fields });
  };
  return { entries, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
