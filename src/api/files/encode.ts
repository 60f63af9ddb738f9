import type { StoredFile } from "../../storage/repositories/types.js";

export const unixSeconds = (ms: number) => Math.floor(ms / 1000);

export function encodeFile(file: StoredFile): object {
  return {
    id: file.id,
    object: "file",
    bytes: file.bytes,
    created_at: unixSeconds(file.createdAt),
    expires_at: file.expiresAt === null ? null : unixSeconds(file.expiresAt),
    filename: file.filename,
    purpose: file.purpose,
    status: "processed",
    status_details: null,
  };
}

/** A page of a list (`items` holds one more than `limit` when there are more), with the SDKs' cursor fields. */
export function encodePage<T>(
  items: readonly T[],
  limit: number,
  encode: (item: T) => object,
  idOf: (item: T) => string,
) {
  const page = items.slice(0, limit);
  const first = page[0];
  const last = page[page.length - 1];
  return {
    object: "list",
    data: page.map(encode),
    first_id: first === undefined ? null : idOf(first),
    last_id: last === undefined ? null : idOf(last),
    has_more: items.length > limit,
  };
}
