import type {
  StoredVectorStore,
  VectorStoreRepository,
} from "../../storage/repositories/vector-store-types.js";

/** How long one sweep may hold a store it is purging before another instance may take it up. */
const PURGE_LEASE_MS = 10 * 60_000;
/** Stores taken per round of a sweep. */
const PURGE_ROUND = 10;

/**
 * A store is expired once its expires_at has passed (anchor: last activity), and for good once the
 * sweep has marked it (its data is gone then, whatever the clock says afterwards).
 */
export function isExpired(store: StoredVectorStore, now: number): boolean {
  return store.expiredAt !== null || (store.expiresAt !== null && store.expiresAt <= now);
}

/**
 * Expires the stores whose time has come: each is marked expired (its unfinished files and file
 * batches cancelled, so ingestion stops), then its chunks, pages and index rows are removed file by
 * file, so its usage_bytes falls to 0; the store and its file list stay, with status `expired`,
 * until the owner deletes them. Runs with the files' housekeeping on every instance; instances
 * sharing a database split the stores between them. Returns how many stores it purged.
 */
export async function sweepExpiredVectorStores(
  stores: VectorStoreRepository,
  now: () => number,
  /** Gives the freed space back to the file system, where the database can (after a purge). */
  reclaimSpace: () => Promise<void> = async () => {},
): Promise<number> {
  let purged = 0;
  for (;;) {
    // A store taken here is not due again until its lease passes, so each round takes new ones.
    const due = await stores.claimExpired(now(), PURGE_LEASE_MS, PURGE_ROUND);
    if (due.length === 0) break;
    for (const store of due) {
      while (await stores.purgeExpiredFile(store.id)) {
        // One file per transaction: a large store never holds the database for long.
      }
      await stores.finishPurge(store.id, now());
      purged++;
    }
  }
  if (purged > 0) await reclaimSpace();
  return purged;
}
