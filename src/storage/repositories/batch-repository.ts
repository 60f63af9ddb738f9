import { type Kysely, type Selectable, sql, type Transaction } from "kysely";
import type { Dialect } from "../database.js";
import type { BatchesTable, DatabaseSchema } from "../schema.js";
import { fileRow } from "./file-repository.js";
import { keysetPage } from "./keyset-page.js";
import type {
  BatchCaller,
  BatchLineError,
  BatchOutcome,
  BatchRepository,
  BatchStatus,
  ClaimedLine,
  LineResult,
  NewBatchLine,
  StoredBatch,
  StoredFile,
} from "./types.js";

const num = (v: number | null): number | null => (v === null ? null : Number(v));

function toBatch(row: Selectable<BatchesTable>): StoredBatch {
  return {
    id: row.id,
    projectId: row.project_id,
    endpoint: row.endpoint,
    model: row.model,
    inputFileId: row.input_file_id,
    completionWindow: row.completion_window,
    status: row.status as BatchStatus,
    outputFileId: row.output_file_id,
    errorFileId: row.error_file_id,
    errors: row.errors === null ? null : JSON.parse(row.errors),
    metadata: row.metadata === null ? null : JSON.parse(row.metadata),
    caller: JSON.parse(row.caller) as BatchCaller,
    outputExpiresAfterSeconds: row.output_expires_after_s,
    counts: { total: Number(row.total), completed: Number(row.completed), failed: Number(row.failed) },
    createdAt: Number(row.created_at),
    inProgressAt: num(row.in_progress_at),
    expiresAt: Number(row.expires_at),
    finalizingAt: num(row.finalizing_at),
    completedAt: num(row.completed_at),
    failedAt: num(row.failed_at),
    expiredAt: num(row.expired_at),
    cancellingAt: num(row.cancelling_at),
    cancelledAt: num(row.cancelled_at),
  };
}

const INSERT_CHUNK = 500;

export class KyselyBatchRepository implements BatchRepository {
  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly dialect: Dialect,
  ) {}

  async create(batch: StoredBatch, lines: readonly NewBatchLine[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("batches")
        .values({
          id: batch.id,
          project_id: batch.projectId,
          endpoint: batch.endpoint,
          model: batch.model,
          input_file_id: batch.inputFileId,
          completion_window: batch.completionWindow,
          status: batch.status,
          output_file_id: null,
          error_file_id: null,
          errors: batch.errors ? JSON.stringify(batch.errors) : null,
          metadata: batch.metadata ? JSON.stringify(batch.metadata) : null,
          caller: JSON.stringify(batch.caller),
          output_expires_after_s: batch.outputExpiresAfterSeconds,
          total: batch.counts.total,
          completed: 0,
          failed: 0,
          created_at: batch.createdAt,
          in_progress_at: batch.inProgressAt,
          expires_at: batch.expiresAt,
          finalizing_at: null,
          completed_at: null,
          failed_at: batch.failedAt,
          expired_at: null,
          cancelling_at: null,
          cancelled_at: null,
          finalize_owner: null,
          finalize_until: null,
        })
        .execute();
      await insertLines(trx, batch.id, lines);
    });
  }

  async dueForValidation(now: number, limit: number): Promise<StoredBatch[]> {
    const rows = await this.db
      .selectFrom("batches")
      .selectAll()
      .where("status", "=", "validating")
      .where((eb) => eb.or([eb("finalize_until", "is", null), eb("finalize_until", "<", now)]))
      .orderBy("created_at")
      .limit(limit)
      .execute();
    return rows.map(toBatch);
  }

  async startRunning(
    batchId: string,
    owner: string,
    model: string | null,
    lines: readonly NewBatchLine[],
    now: number,
  ): Promise<boolean> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable("batches")
          .set({
            status: "in_progress",
            in_progress_at: now,
            model,
            total: lines.length,
            finalize_owner: null,
            finalize_until: null,
          })
          .where("id", "=", batchId)
          .where("status", "=", "validating")
          .where("finalize_owner", "=", owner)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) throw new NotTaken();
        await insertLines(trx, batchId, lines);
        return true;
      });
    } catch (err) {
      if (err instanceof NotTaken) return false;
      throw err;
    }
  }

  async failValidation(
    batchId: string,
    owner: string,
    errors: readonly BatchLineError[],
    now: number,
  ): Promise<boolean> {
    const updated = await this.db
      .updateTable("batches")
      .set({
        status: "failed",
        failed_at: now,
        errors: JSON.stringify(errors),
        finalize_owner: null,
        finalize_until: null,
      })
      .where("id", "=", batchId)
      .where("status", "=", "validating")
      .where("finalize_owner", "=", owner)
      .executeTakeFirst();
    return Number(updated.numUpdatedRows) === 1;
  }

  async renewBatchLease(batchId: string, owner: string, until: number): Promise<boolean> {
    const updated = await this.db
      .updateTable("batches")
      .set({ finalize_until: until })
      .where("id", "=", batchId)
      .where("finalize_owner", "=", owner)
      .where("finalize_until", "is not", null)
      .executeTakeFirst();
    return Number(updated.numUpdatedRows) === 1;
  }

  async releaseBatchLease(batchId: string, owner: string): Promise<void> {
    await this.db
      .updateTable("batches")
      .set({ finalize_owner: null, finalize_until: null })
      .where("id", "=", batchId)
      .where("finalize_owner", "=", owner)
      .execute();
  }

  async get(projectId: string, batchId: string): Promise<StoredBatch | undefined> {
    const row = await this.db
      .selectFrom("batches")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", batchId)
      .executeTakeFirst();
    return row ? toBatch(row) : undefined;
  }

  async getForWorker(batchId: string): Promise<StoredBatch | undefined> {
    const row = await this.db.selectFrom("batches").selectAll().where("id", "=", batchId).executeTakeFirst();
    return row ? toBatch(row) : undefined;
  }

  async list(projectId: string, query: { limit: number; after?: string }): Promise<StoredBatch[]> {
    const base = this.db.selectFrom("batches").selectAll().where("project_id", "=", projectId);
    const cursor = query.after === undefined ? undefined : await this.get(projectId, query.after);
    const { select } = keysetPage(base, ["created_at", "id"], {
      order: "desc",
      limit: query.limit + 1,
      ...(cursor ? { cursor: { values: [cursor.createdAt, cursor.id] } } : {}),
    });
    return (await select.execute()).map(toBatch);
  }

  async requestCancel(projectId: string, batchId: string, now: number): Promise<StoredBatch | undefined> {
    await this.db
      .updateTable("batches")
      .set({ status: "cancelling", cancelling_at: now })
      .where("project_id", "=", projectId)
      .where("id", "=", batchId)
      .where("status", "in", ["validating", "in_progress"])
      .execute();
    return this.get(projectId, batchId);
  }

  async claim(owner: string, now: number, leaseMs: number, max: number): Promise<ClaimedLine[]> {
    if (max <= 0) return [];
    // Postgres: rows another instance is claiming are skipped, not waited for. SQLite has one
    // writer, so the statement is atomic as it is.
    const lock = this.dialect === "postgres" ? sql`for update of l skip locked` : sql``;
    const result = await sql<{
      batch_id: string;
      line_no: number;
      custom_id: string;
      body: string;
      attempts: number;
    }>`
      update batch_lines set lease_owner = ${owner}, lease_until = ${now + leaseMs}, attempts = attempts + 1
      where (batch_id, line_no) in (
        select l.batch_id, l.line_no from batch_lines l join batches b on b.id = l.batch_id
        where b.status = 'in_progress' and b.finalize_owner is null and b.expires_at > ${now}
          and l.done = 0 and (l.lease_until is null or l.lease_until < ${now})
        order by b.created_at, l.batch_id, l.line_no
        limit ${max}
        ${lock}
      )
      returning batch_id, line_no, custom_id, body, attempts`.execute(this.db);
    return result.rows
      .map((r) => ({
        batchId: r.batch_id,
        lineNo: Number(r.line_no),
        customId: r.custom_id,
        body: r.body,
        attempts: Number(r.attempts),
      }))
      .sort((a, b) => (a.batchId === b.batchId ? a.lineNo - b.lineNo : a.batchId < b.batchId ? -1 : 1));
  }

  async renew(
    owner: string,
    lines: readonly { batchId: string; lineNo: number }[],
    until: number,
  ): Promise<void> {
    for (const line of lines) {
      await this.db
        .updateTable("batch_lines")
        .set({ lease_until: until })
        .where("batch_id", "=", line.batchId)
        .where("line_no", "=", line.lineNo)
        .where("lease_owner", "=", owner)
        .where("done", "=", 0)
        .execute();
    }
  }

  async complete(batchId: string, lineNo: number, result: string, failed: boolean): Promise<boolean> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        // The batch row first: this locks it, so a finalization that starts meanwhile either
        // waits for this result or makes this update find nothing.
        const counted = await trx
          .updateTable("batches")
          .set((eb) => (failed ? { failed: eb("failed", "+", 1) } : { completed: eb("completed", "+", 1) }))
          .where("id", "=", batchId)
          .where("status", "in", ["in_progress", "cancelling"])
          .where("finalize_owner", "is", null)
          .executeTakeFirst();
        if (Number(counted.numUpdatedRows) !== 1) throw new NotTaken();
        const written = await trx
          .updateTable("batch_lines")
          // lease_owner stays: it records which worker answered the line.
          .set({ done: 1, failed: failed ? 1 : 0, result, lease_until: null })
          .where("batch_id", "=", batchId)
          .where("line_no", "=", lineNo)
          .where("done", "=", 0)
          .executeTakeFirst();
        if (Number(written.numUpdatedRows) !== 1) throw new NotTaken();
        return true;
      });
    } catch (err) {
      if (err instanceof NotTaken) return false;
      throw err;
    }
  }

  async release(
    owner: string,
    lines: readonly { batchId: string; lineNo: number }[],
    retryAt: number | null,
    uncounted = false,
  ): Promise<void> {
    for (const line of lines) {
      await this.db
        .updateTable("batch_lines")
        .set((eb) => ({
          lease_owner: null,
          lease_until: retryAt,
          ...(uncounted ? { attempts: eb("attempts", "-", 1) } : {}),
        }))
        .where("batch_id", "=", line.batchId)
        .where("line_no", "=", line.lineNo)
        .where("lease_owner", "=", owner)
        .where("done", "=", 0)
        .execute();
    }
  }

  async dueForFinalization(
    now: number,
    limit: number,
  ): Promise<{ batch: StoredBatch; outcome: BatchOutcome }[]> {
    const rows = await this.db
      .selectFrom("batches as b")
      .selectAll()
      .where((eb) =>
        eb.and([
          eb.or([eb("b.finalize_until", "is", null), eb("b.finalize_until", "<", now)]),
          eb.or([
            eb("b.status", "in", ["cancelling", "finalizing"]),
            // Never validated within its window (no worker ran): it expires with no lines.
            eb.and([eb("b.status", "=", "validating"), eb("b.expires_at", "<=", now)]),
            eb.and([
              eb("b.status", "=", "in_progress"),
              eb.or([
                eb("b.expires_at", "<=", now),
                eb.not(
                  eb.exists(
                    eb
                      .selectFrom("batch_lines as l")
                      .select("l.line_no")
                      .whereRef("l.batch_id", "=", "b.id")
                      .where("l.done", "=", 0),
                  ),
                ),
              ]),
            ]),
          ]),
        ]),
      )
      .orderBy("b.created_at")
      .limit(limit)
      .execute();
    return rows.map((row) => {
      const batch = toBatch(row);
      const outcome: BatchOutcome =
        batch.status === "cancelling"
          ? "cancelled"
          : (batch.status === "in_progress" || batch.status === "validating") && batch.expiresAt <= now
            ? "expired"
            : batch.status === "finalizing" &&
                batch.expiresAt <= now &&
                batch.counts.completed + batch.counts.failed < batch.counts.total
              ? "expired"
              : "completed";
      return { batch, outcome };
    });
  }

  async claimFinalization(
    batchId: string,
    from: BatchStatus,
    owner: string,
    now: number,
    until: number,
  ): Promise<boolean> {
    const updated = await this.db
      .updateTable("batches")
      .set({ finalize_owner: owner, finalize_until: until })
      .where("id", "=", batchId)
      .where("status", "=", from)
      .where((eb) => eb.or([eb("finalize_until", "is", null), eb("finalize_until", "<", now)]))
      .executeTakeFirst();
    return Number(updated.numUpdatedRows) === 1;
  }

  async markFinalizing(batchId: string, owner: string, now: number): Promise<void> {
    await this.db
      .updateTable("batches")
      .set({ status: "finalizing", finalizing_at: now })
      .where("id", "=", batchId)
      .where("finalize_owner", "=", owner)
      .where("status", "=", "in_progress")
      .execute();
  }

  async results(batchId: string, afterLineNo: number, limit: number): Promise<LineResult[]> {
    const rows = await this.db
      .selectFrom("batch_lines")
      .select(["line_no", "custom_id", "done", "failed", "result"])
      .where("batch_id", "=", batchId)
      .where("line_no", ">", afterLineNo)
      .orderBy("line_no")
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      lineNo: Number(r.line_no),
      customId: r.custom_id,
      done: Number(r.done) === 1,
      failed: Number(r.failed) === 1,
      result: r.result,
    }));
  }

  async finish(
    batchId: string,
    owner: string,
    outcome: BatchOutcome,
    files: { output: StoredFile | null; error: StoredFile | null },
    extraFailed: number,
    now: number,
  ): Promise<boolean> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const at =
          outcome === "completed" ? "completed_at" : outcome === "cancelled" ? "cancelled_at" : "expired_at";
        const updated = await trx
          .updateTable("batches")
          .set((eb) => ({
            status: outcome,
            [at]: now,
            output_file_id: files.output?.id ?? null,
            error_file_id: files.error?.id ?? null,
            failed: eb("failed", "+", extraFailed),
            finalize_until: null,
          }))
          .where("id", "=", batchId)
          .where("finalize_owner", "=", owner)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) throw new NotTaken();
        for (const file of [files.output, files.error]) {
          if (file) await trx.insertInto("files").values(fileRow(file)).execute();
        }
        return true;
      });
    } catch (err) {
      if (err instanceof NotTaken) return false;
      throw err;
    }
  }
}

/** Rolls a transaction back when its conditional update found nothing to do. */
class NotTaken extends Error {}

async function insertLines(
  trx: Transaction<DatabaseSchema>,
  batchId: string,
  lines: readonly NewBatchLine[],
): Promise<void> {
  for (let i = 0; i < lines.length; i += INSERT_CHUNK) {
    await trx
      .insertInto("batch_lines")
      .values(
        lines.slice(i, i + INSERT_CHUNK).map((line) => ({
          batch_id: batchId,
          line_no: line.lineNo,
          custom_id: line.customId,
          body: line.body,
          done: 0,
          lease_owner: null,
          lease_until: null,
          attempts: 0,
          failed: 0,
          result: null,
        })),
      )
      .execute();
  }
}
