/**
 * The console is a client of the public and admin APIs like any other: same origin, and the key
 * typed in travels only in the Authorization header. It is kept in sessionStorage (this tab only),
 * never in a URL or a cookie.
 */

const KEY_STORAGE = "switchboard.key";

export function storedKey(): string {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

export function storeKey(key: string): void {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage can be off (private modes): the key then lasts as long as the page.
  }
}

/** An error the API answered with (its OpenAI envelope), or a network failure. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null = null,
    /** The request field it is about (`tools[0].function.parameters`), when the server names one. */
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

/** The OpenAI error envelope's inside. */
interface WireError {
  message?: string;
  code?: string | null;
  param?: string | null;
}

function headers(json: boolean): Headers {
  const h = new Headers();
  const key = storedKey();
  if (key) h.set("authorization", `Bearer ${key}`);
  if (json) h.set("content-type", "application/json");
  return h;
}

async function failure(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  try {
    const error = (JSON.parse(text) as { error?: WireError }).error;
    if (error?.message)
      return new ApiError(error.message, res.status, error.code ?? null, error.param ?? null);
  } catch {
    // Not our envelope (a proxy's page): fall through to the status line.
  }
  return new ApiError(`${res.status} ${res.statusText || "error"}`, res.status);
}

/** One API call; resolves to the parsed JSON body (or the text for non-JSON answers). */
export async function api<T>(
  method: string,
  path: string,
  body?: unknown,
  options: { allowStatus?: number[] } = {},
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? null : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    throw new ApiError(`The server could not be reached (${String(error)}).`, 0);
  }
  if (!res.ok && !options.allowStatus?.includes(res.status)) throw await failure(res);
  const type = res.headers.get("content-type") ?? "";
  return (type.includes("json") ? await res.json() : await res.text()) as T;
}

/**
 * POSTs a streaming request and yields each server-sent event's JSON payload until `[DONE]`.
 * An error frame mid-stream is thrown as an ApiError.
 */
export async function* streamEvents(
  path: string,
  body: unknown,
  signal: AbortSignal,
): AsyncGenerator<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: "POST",
      headers: headers(true),
      body: JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    if (signal.aborted) return;
    throw new ApiError(`The server could not be reached (${String(error)}).`, 0);
  }
  if (!res.ok || !res.body) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replaceAll("\r\n", "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const event = JSON.parse(data) as Record<string, unknown>;
      const error = event.error as WireError | undefined;
      if (error)
        throw new ApiError(
          error.message ?? "The stream failed.",
          500,
          error.code ?? null,
          error.param ?? null,
        );
      yield event;
    }
  }
}

export interface ModelInfo {
  id: string;
  owned_by?: string;
}

export async function listModels(): Promise<ModelInfo[]> {
  const res = await api<{ data: ModelInfo[] }>("GET", "/v1/models");
  return res.data;
}
