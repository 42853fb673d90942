/** The logging interface procgrpc writes to; pino loggers fit it as they are. */
export interface Logger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
  /**
   * The lowest level written, when the logger knows it (pino's `level`, `jsonLogger`'s): the pool
   * tells its workers, so that they do not even write lines nobody would see.
   */
  readonly level?: string;
}

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };

/** True for the names `LogLevel` allows. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(LEVELS, value);
}

/**
 * The default logger: pino-style JSON lines (`level` as pino's numbers, `time` in ms, `msg`) on
 * stderr. Levels below `level` cost one comparison and allocate nothing.
 */
export function jsonLogger(level: LogLevel = "info", write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const threshold = LEVELS[level];
  const emit = (lvl: Exclude<LogLevel, "silent">) => (obj: Record<string, unknown>, msg?: string) => {
    if (LEVELS[lvl] < threshold) return;
    write(`${JSON.stringify({ level: LEVELS[lvl], time: Date.now(), name: "procgrpc", ...obj, msg })}\n`);
  };
  return { level, debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

/** A logger that drops everything. */
export const silentLogger: Logger = jsonLogger("silent");

/**
 * The level of a pool's default logger: `given` (checked), else `$PROCGRPC_LOG_LEVEL`, else
 * `"warn"` — a healthy pool writes nothing. Throws a TypeError naming `owner` for a bad level.
 */
export function resolveLogLevel(owner: string, given: unknown): LogLevel {
  if (given !== undefined) {
    if (isLogLevel(given)) return given;
    throw new TypeError(`${owner}: logLevel must be "debug", "info", "warn", "error" or "silent", got ${JSON.stringify(given)}`);
  }
  const env = process.env.PROCGRPC_LOG_LEVEL?.trim().toLowerCase();
  if (!env) return "warn";
  if (isLogLevel(env)) return env;
  if (env === "warning") return "warn";
  throw new TypeError(`PROCGRPC_LOG_LEVEL must be "debug", "info", "warn", "error" or "silent", got ${JSON.stringify(process.env.PROCGRPC_LOG_LEVEL)}`);
}
