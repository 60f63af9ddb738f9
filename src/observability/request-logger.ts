import type { FastifyBaseLogger } from "fastify";
import type { Bindings, ChildLoggerOptions, LogFn } from "pino";

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * A request's logger (`request.log`): the server's logger with the request's id bound, made only
 * when a line is written through it. Fastify writes through it about a request that went wrong
 * its own way (a reply sent twice, a stream cut short), and those lines need the request's id; a
 * pino child made for every request would cost its bindings' serialisation (~1 µs) on the many
 * that never write one. The server's own per-request line goes through the server's logger.
 */
export class RequestLogger implements FastifyBaseLogger {
  declare fatal: LogFn;
  declare error: LogFn;
  declare warn: LogFn;
  declare info: LogFn;
  declare debug: LogFn;
  declare trace: LogFn;
  declare silent: LogFn;
  private bound: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  get level(): string {
    return this.bound?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.logger().level = level;
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger().child(bindings, options);
  }

  quiet(level: (typeof LEVELS)[number]): boolean {
    const logger = this.bound ?? this.parent;
    return level === "silent" || logger[level] === logger.silent;
  }

  /** The bound logger, made at the first line. */
  logger(): FastifyBaseLogger {
    this.bound ??= this.parent.child(this.bindings, this.options);
    return this.bound;
  }
}

// One method per level on the prototype (not a closure per instance): each hands its line to the bound logger.
for (const level of LEVELS) {
  Object.defineProperty(RequestLogger.prototype, level, {
    value(this: RequestLogger, ...args: unknown[]) {
      // A level that is off writes nothing: no bound logger is made for it (pino points every
      // level that is off at the same no-op as silent).
      if (this.quiet(level)) return;
      const logger = this.logger();
      (logger[level] as (...line: unknown[]) => void).apply(logger, args);
    },
    writable: true,
    configurable: true,
  });
}
