import { createRequire } from "node:module";
import { type DestinationStream, type Logger, pino } from "pino";

/**
 * Paths that may carry secrets. Request and response bodies are never logged at all, so prompt
 * and completion text cannot reach the log.
 */
const REDACT = [
  "req.headers.authorization",
  "req.headers.cookie",
  "req.headers['x-api-key']",
  "req.headers['api-key']",
  "headers.authorization",
  "authorization",
  "apiKey",
  "token",
];

export type LogFormat = "json" | "pretty";

/** JSON lines (for files and collectors) to `destination`, or stdout. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT, censor: "[redacted]" },
      base: { service: "switchboard" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/**
 * Lines for people: time, level, message, then the fields on the same line. The same redaction
 * runs first (pino redacts before the line reaches the prettifier). Written synchronously, so
 * the last lines before an exit are not lost.
 */
export function createPrettyLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  // Loaded only for a terminal: a server logging JSON never holds the prettifier in memory.
  const pinoPretty = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
  const pretty = pinoPretty({
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,service",
    singleLine: true,
    sync: true,
    ...(destination ? { destination } : {}),
  });
  return createLogger(level, pretty);
}

/** The logger of a command: `auto` is pretty when stdout is a terminal, JSON otherwise. */
export function createCommandLogger(
  level: string,
  format: "auto" | LogFormat,
  stdoutIsTerminal = process.stdout.isTTY === true,
): Logger {
  const pretty = format === "pretty" || (format === "auto" && stdoutIsTerminal);
  return pretty ? createPrettyLogger(level) : createLogger(level);
}
