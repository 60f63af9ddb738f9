import type { Logger } from "pino";
import type { ApiKeyRepository, UsageRecord, UsageRepository } from "../storage/repositories/types.js";

export interface UsageRecorderOptions {
  usage: UsageRepository;
  apiKeys: ApiKeyRepository;
  logger: Logger;
  /** Records are written at least this often… */
  flushIntervalMs?: number;
  /** …or as soon as this many are waiting. */
  maxBatch?: number;
  /** Beyond this many unwritten records (requests; storage down), the oldest are dropped and counted. */
  maxBuffered?: number;
  now?: () => number;
}

/**
 * Writes usage records in batches off the request path: a request only appends to an array.
 * Each flush is stored rolled up (a row per group and minute, see UsageRepository.insertMany);
 * the bounds here count requests. Keys' last-used times are written with the same flush.
 * close() writes what is left.
 */
export class UsageRecorder {
  private buffer: UsageRecord[] = [];
  private usedKeys = new Set<string>();
  private flushing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly maxBatch: number;
  private readonly maxBuffered: number;
  private readonly now: () => number;
  dropped = 0;

  constructor(private readonly options: UsageRecorderOptions) {
    this.maxBatch = options.maxBatch ?? 500;
    this.maxBuffered = options.maxBuffered ?? 100_000;
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
    this.timer.unref();
  }

  record(record: UsageRecord): void {
    this.buffer.push(record);
    if (record.keyId && record.keyId !== "bootstrap") this.usedKeys.add(record.keyId);
    if (this.buffer.length > this.maxBuffered) {
      const excess = this.buffer.length - this.maxBuffered;
      this.buffer.splice(0, excess);
      this.dropped += excess;
    }
    if (this.buffer.length >= this.maxBatch) void this.flush();
  }

  /** Writes everything buffered so far; concurrent calls share one write. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.buffer.length === 0 && this.usedKeys.size === 0) return Promise.resolve();
    const batch = this.buffer;
    const keys = [...this.usedKeys];
    this.buffer = [];
    this.usedKeys = new Set();
    this.flushing = (async () => {
      try {
        try {
          await this.options.usage.insertMany(batch);
        } catch (err) {
          // Storage is down: keep the records for the next attempt (bounded by maxBuffered).
          this.buffer = batch.concat(this.buffer);
          for (const key of keys) this.usedKeys.add(key);
          this.options.logger.error({ err, pending: this.buffer.length }, "could not write usage records");
          return;
        }
        // The records are written: a failure from here on must not queue them a second time.
        try {
          await this.options.apiKeys.touch(keys, this.now());
        } catch (err) {
          for (const key of keys) this.usedKeys.add(key);
          this.options.logger.error({ err, keys: keys.length }, "could not record when keys were last used");
        }
      } finally {
        this.flushing = undefined;
      }
    })();
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.flush();
  }
}
