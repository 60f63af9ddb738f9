import { ServiceError } from "../../core/errors.js";
import type { GenerationPart } from "../../core/generation.js";
import type { StreamDecoder } from "./provider-adapter.js";
import type { EventSourceMessage } from "./sse-events.js";

/** Replaces every secret in a text with `[redacted]`. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let clean = text;
  for (const secret of secrets) if (secret) clean = clean.split(secret).join("[redacted]");
  return clean;
}

/**
 * A decoder whose errors have the secrets taken out of their message: an error the upstream
 * reports mid-stream is in its own words, and those may echo the key or a configured header.
 * (A class: an object literal with a getter, made per answer, cost more than the calls it wraps.)
 */
export function redactingDecoder(decoder: StreamDecoder, secrets: readonly string[]): StreamDecoder {
  return new RedactingDecoder(decoder, secrets);
}

class RedactingDecoder implements StreamDecoder {
  constructor(
    private readonly decoder: StreamDecoder,
    private readonly secrets: readonly string[],
  ) {}

  get complete(): boolean {
    return this.decoder.complete;
  }

  read(event: EventSourceMessage): GenerationPart[] {
    try {
      return this.decoder.read(event);
    } catch (err) {
      throw this.clean(err);
    }
  }

  finish(): GenerationPart[] {
    try {
      return this.decoder.finish();
    } catch (err) {
      throw this.clean(err);
    }
  }

  private clean(err: unknown): unknown {
    if (!(err instanceof ServiceError)) return err;
    const message = redactSecrets(err.message, this.secrets);
    if (message === err.message) return err;
    return new ServiceError(err.kind, message, { code: err.code, param: err.param, hints: err.hints });
  }
}
