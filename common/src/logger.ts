import pino, { type Logger, type LoggerOptions } from "pino";

export type { Logger };

/**
 * One structured logger for every process: NDJSON on stdout, pretty only when a human is watching
 * (a TTY, outside CI) or `LOG_PRETTY=1`. Object first, message second:
 * `log.warn({ err, topic }, "decode failed")`.
 */
export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? "info";
  const pretty = process.env.LOG_PRETTY === "1" || (process.env.LOG_PRETTY !== "0" && process.stdout.isTTY && !process.env.CI);
  const base: LoggerOptions = { name, level, ...options };
  if (pretty) {
    return pino({
      ...base,
      transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } },
    });
  }
  return pino(base);
}

/** A logger that writes nothing — for tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
