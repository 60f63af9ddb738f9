import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, SqliteDialect, sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteStatementCache, STATEMENT_CACHE_LIMITS } from "../../src/storage/sqlite-statement-cache.js";

interface Schema {
  items: { id: number; name: string };
}

describe("SQLite statement cache", () => {
  let dir: string;
  let sqlite: SQLite.Database;
  let statements: SqliteStatementCache;
  let db: Kysely<Schema>;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-stmt-cache-"));
    sqlite = new SQLite(join(dir, "cache.db"));
    statements = new SqliteStatementCache(sqlite);
    db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: statements }) });
    await db.schema
      .createTable("items")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("name", "text")
      .execute();
    await db
      .insertInto("items")
      .values(Array.from({ length: 5 }, (_, i) => ({ id: i + 1, name: `item ${i + 1}` })))
      .execute();
  });

  afterEach(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("hands out the statement it prepared before for the same SQL text", () => {
    const first = statements.prepare("select * from items where id = ?");
    expect(statements.prepare("select * from items where id = ?")).toBe(first);
    expect(statements.prepare("select * from items where id > ?")).not.toBe(first);
  });

  it("runs repeated queries, writes and transactions through kysely with one statement per text", async () => {
    for (let round = 0; round < 3; round++) {
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable("items")
          .set({ name: `round ${round}` })
          .where("id", "=", 1)
          .execute();
      });
      const row = await db.selectFrom("items").select("name").where("id", "=", 1).executeTakeFirst();
      expect(row?.name).toBe(`round ${round}`);
    }
    const sizeAfterWarmUp = statements.size;
    await db.transaction().execute(async (trx) => {
      await trx.updateTable("items").set({ name: "again" }).where("id", "=", 1).execute();
    });
    await db.selectFrom("items").select("name").where("id", "=", 1).execute();
    expect(statements.size).toBe(sizeAfterWarmUp);
  });

  it("runs the same select again while it streams (two kysely instances over one database)", async () => {
    const other = new Kysely<Schema>({ dialect: new SqliteDialect({ database: statements }) });
    const query = () => db.selectFrom("items").select(["id", "name"]).orderBy("id");
    const streamed: number[] = [];
    for await (const row of query().stream()) {
      streamed.push(row.id);
      // The streaming statement is busy: this select must get one of its own.
      const again = await other.selectFrom("items").select(["id", "name"]).orderBy("id").execute();
      expect(again.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
    }
    expect(streamed).toEqual([1, 2, 3, 4, 5]);
    // Once the stream is over its statement serves again.
    const text = query().compile().sql;
    expect(statements.prepare(text)).toBe(statements.prepare(text));
    const after = [];
    for await (const row of query().stream()) after.push(row.id);
    expect(after).toEqual([1, 2, 3, 4, 5]);
  });

  it("keeps statements prepared before a schema change working after it", async () => {
    const all = () => sql<Record<string, unknown>>`select * from items where id = ${1}`.execute(db);
    expect((await all()).rows).toEqual([{ id: 1, name: "item 1" }]);
    const statement = statements.prepare("select * from items where id = ?");

    await db.schema
      .alterTable("items")
      .addColumn("price", "integer", (c) => c.defaultTo(7))
      .execute();
    expect((await all()).rows).toEqual([{ id: 1, name: "item 1", price: 7 }]);
    expect(statements.prepare("select * from items where id = ?")).toBe(statement);

    await db.schema.dropTable("items").execute();
    await db.schema.createTable("items").addColumn("id", "integer").addColumn("label", "text").execute();
    await sql`insert into items (id, label) values (1, 'relabelled')`.execute(db);
    expect((await all()).rows).toEqual([{ id: 1, label: "relabelled" }]);
  });

  it("keeps at most its bound, dropping the least recently used text", () => {
    const small = new SqliteStatementCache(sqlite, { statements: 3, sqlChars: 1000 });
    const a = small.prepare("select 1");
    const b = small.prepare("select 2");
    small.prepare("select 3");
    expect(small.prepare("select 1")).toBe(a); // now the most recently used
    small.prepare("select 4");
    expect(small.size).toBe(3);
    expect(small.prepare("select 1")).toBe(a);
    expect(small.prepare("select 2")).not.toBe(b);
    expect(small.size).toBe(3);
  });

  it("does not grow past its bound with IN lists of every length", async () => {
    for (let n = 1; n <= STATEMENT_CACHE_LIMITS.statements + 50; n++) {
      const ids = Array.from({ length: n }, (_, i) => i + 1);
      const rows = await db.selectFrom("items").select("id").where("id", "in", ids).execute();
      expect(rows).toHaveLength(Math.min(n, 5));
    }
    expect(statements.size).toBe(STATEMENT_CACHE_LIMITS.statements);
  });

  it("keeps at most its budget of SQL text, and never a text longer than all of it", () => {
    const small = new SqliteStatementCache(sqlite, { statements: 100, sqlChars: 40 });
    const texts = ["select 1 as aaaaaaa", "select 2 as bbbbbbb", "select 3 as ccccccc"]; // 19 chars each
    const [first, second] = texts.map((text) => small.prepare(text));
    expect(small.size).toBe(2); // the third pushed the first out
    expect(small.prepare(texts[1] as string)).toBe(second);
    expect(small.prepare(texts[0] as string)).not.toBe(first);

    const long = `select 4 as ${"d".repeat(40)}`;
    expect(small.prepare(long)).not.toBe(small.prepare(long));
    expect(small.size).toBe(2);
  });

  it("closes the database on destroy", async () => {
    await db.destroy();
    expect(sqlite.open).toBe(false);
    expect(statements.size).toBe(0);
  });
});
