import { ServiceError } from "../../core/errors.js";
import type { StreamDecoder } from "./provider-adapter.js";

/** Replaces every secret in a text with `[redacted]`. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let clean = text;
  for (const secret of secrets) if (secret) clean = clean.split(secret).join("[redacted]");
  return clean;
}

/**
 * A decoder whose errors have the secrets taken out of their message: an error the upstream
 * reports mid-stream is in its own words, and those may echo the key or a configured header.
 */
export function redactingDecoder(decoder: StreamDecoder, secrets: readonly string[]): StreamDecoder {
  const clean = (err: unknown): unknown => {
    if (!(err instanceof ServiceError)) return err;
    const message = redactSecrets(err.message, secrets);
    if (message === err.message) return err;
    return new ServiceError(err.kind, message, { code: err.code, param: err.param, hints: err.hints });
  };
  return {
    get complete() {
      return decoder.complete;
    },
    read(event) {
      try {
        return decoder.read(event);
      } catch (err) {
        throw clean(err);
      }
    },
    finish() {
      try {
        return decoder.finish();
      } catch (err) {
        throw clean(err);
      }
    },
  };
}
