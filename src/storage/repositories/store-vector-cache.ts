import { canHold, rowBytes, type StoreVectors } from "./store-vectors.js";

/** How the cache reads a store's vectors from the database. */
export interface StoreVectorLoader {
  /** Searchable rows the store has now: what the load makes room for. */
  count(): Promise<number>;
  /**
   * Reads them all (at most `capacity`), taking the rows an `older` copy of the store holds from it
   * rather than from the database. `unchanged`: the store was at the version asked for from before
   * the count to after the last row, so the copy is exact and may be kept. Null when more rows came
   * than counted (the store changed meanwhile): the search scans the database instead.
   */
  read(
    capacity: number,
    older: StoreVectors | undefined,
  ): Promise<{ vectors: StoreVectors; unchanged: boolean } | null>;
}

/** A store's copy at one version; `vectors` null = it does not fit in the budget. */
interface Entry {
  version: number;
  dims: number;
  vectors: StoreVectors | null;
}

/** Stores remembered at most (over-budget marks included); each costs a few bytes past its vectors. */
const MAX_ENTRIES = 10_000;

/**
 * Stores' vectors held in memory, each as of one vectors_version, within a byte budget: least
 * recently searched stores are dropped first, and a store larger than the budget is never loaded
 * (its searches scan the database). A copy is used only while the store's version in the database
 * is the one it was loaded at, and every write to a store's searchable chunks raises that version
 * in the same transaction: instances sharing a database stay exact. Searches that miss while a
 * load is under way wait for that load; nothing is read twice.
 */
export class StoreVectorCache {
  /** By store id; Map order is least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private readonly loads = new Map<string, Promise<StoreVectors | null>>();
  private heldBytes = 0;
  /** Bytes that loads under way will take. */
  private reservedBytes = 0;

  constructor(readonly budgetBytes: number) {}

  /** The copy of the store at `version`, if held (counts as a use); else undefined. */
  held(storeId: string, version: number, dims: number): StoreVectors | undefined {
    const entry = this.entries.get(storeId);
    if (!entry || entry.version !== version || entry.dims !== dims || !entry.vectors) return undefined;
    this.touch(storeId, entry);
    return entry.vectors;
  }

  /** Whether the store at `version` is known not to fit. */
  overBudget(storeId: string, version: number, dims: number): boolean {
    const entry = this.entries.get(storeId);
    return entry !== undefined && entry.version === version && entry.dims === dims && !entry.vectors;
  }

  /**
   * The store's vectors at `version`: held, or loaded through `loader` (once, however many
   * searches ask meanwhile). Null when they do not fit (the caller scans the database).
   */
  async vectors(
    storeId: string,
    version: number,
    dims: number,
    loader: StoreVectorLoader,
  ): Promise<StoreVectors | null> {
    const held = this.held(storeId, version, dims);
    if (held) return held;
    if (this.overBudget(storeId, version, dims)) return null;
    const key = `${storeId}\u0000${version}\u0000${dims}`;
    let load = this.loads.get(key);
    if (!load) {
      load = this.load(storeId, version, dims, loader).finally(() => this.loads.delete(key));
      this.loads.set(key, load);
    }
    return load;
  }

  /** Drops what is held of a store (it is gone). */
  forget(storeId: string): void {
    const entry = this.entries.get(storeId);
    if (!entry) return;
    this.entries.delete(storeId);
    this.heldBytes -= entry.vectors?.bytes ?? 0;
  }

  /** What is held now, for operators and benchmarks. */
  stats(): { stores: number; bytes: number; budgetBytes: number } {
    let stores = 0;
    for (const entry of this.entries.values()) if (entry.vectors) stores++;
    return { stores, bytes: this.heldBytes, budgetBytes: this.budgetBytes };
  }

  private async load(
    storeId: string,
    version: number,
    dims: number,
    loader: StoreVectorLoader,
  ): Promise<StoreVectors | null> {
    const rows = await loader.count();
    const bytes = rows * rowBytes(dims);
    if (bytes > this.budgetBytes || !canHold(dims, rows)) {
      this.keep(storeId, { version, dims, vectors: null });
      return null;
    }
    // An older copy of this store leaves the budget now (the load still reads its unchanged rows
    // from it: for that while the store is held twice); then the least recently used go.
    const current = this.entries.get(storeId);
    const older = current && current.version < version && current.dims === dims ? current.vectors : null;
    if (current && current.version < version) this.forget(storeId);
    for (const [id, entry] of this.entries) {
      if (this.heldBytes + this.reservedBytes + bytes <= this.budgetBytes) break;
      if (entry.vectors) this.forget(id);
    }
    // Other loads under way hold the rest: this search scans the database rather than overrun.
    if (this.heldBytes + this.reservedBytes + bytes > this.budgetBytes) return null;
    this.reservedBytes += bytes;
    let read: Awaited<ReturnType<StoreVectorLoader["read"]>>;
    try {
      read = await loader.read(rows, older ?? undefined);
    } finally {
      this.reservedBytes -= bytes;
    }
    if (!read) return null;
    if (read.unchanged) this.keep(storeId, { version, dims, vectors: read.vectors });
    return read.vectors;
  }

  private keep(storeId: string, entry: Entry): void {
    const current = this.entries.get(storeId);
    // A copy of a later version that arrived first stays.
    if (current && current.version > entry.version) return;
    this.forget(storeId);
    this.entries.set(storeId, entry);
    this.heldBytes += entry.vectors?.bytes ?? 0;
    if (this.entries.size > MAX_ENTRIES) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.forget(oldest);
    }
  }

  private touch(storeId: string, entry: Entry): void {
    this.entries.delete(storeId);
    this.entries.set(storeId, entry);
  }
}
