import { type SelectQueryBuilder, sql } from "kysely";

/** Where a page starts: the keys of the row it starts after (or, going back, before). */
export interface PageCursor {
  values: readonly (string | number)[];
  /**
   * The page is the rows before the cursor in the chosen order (a list's `before`); such a page
   * is read with one row more than it shows, which tells has_more.
   */
  before?: boolean;
}

export interface KeysetPage {
  order: "asc" | "desc";
  /** Rows to read (lists read one more than they show, to tell has_more). */
  limit: number;
  cursor?: PageCursor;
}

/**
 * Keyset paging over columns that order the rows uniquely (`created_at, id`; an item's
 * `position`): rows after the cursor row in the chosen order, or before it (read the other way,
 * then turned around by `finish`, the row past the page kept last). The cursor is one row-value
 * comparison, which both databases read as a range of the index those columns lead.
 */
export function keysetPage<DB, TB extends keyof DB, O>(
  select: SelectQueryBuilder<DB, TB, O>,
  keys: readonly string[],
  page: KeysetPage,
): { select: SelectQueryBuilder<DB, TB, O>; finish<T>(rows: T[]): T[] } {
  const back = page.cursor?.before === true;
  const descending = (page.order === "desc") !== back;
  let out = select;
  if (page.cursor) {
    const columns = sql.join(keys.map((key) => sql.ref(key)));
    const values = sql.join(page.cursor.values);
    out = out.where(sql<boolean>`(${columns}) ${sql.raw(descending ? "<" : ">")} (${values})`);
  }
  for (const key of keys) out = out.orderBy(sql.ref(key), descending ? "desc" : "asc");
  return {
    select: out.limit(page.limit),
    finish<T>(rows: T[]): T[] {
      if (!back) return rows;
      // Going back, the row past the page is the farthest one; the page is shown nearest first.
      const shown = page.limit - 1;
      const reversed = rows.slice(0, shown).reverse();
      return rows.length > shown ? [...reversed, rows[shown] as T] : reversed;
    },
  };
}
