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
