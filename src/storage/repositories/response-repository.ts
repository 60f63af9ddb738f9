import type { Kysely, Selectable } from "kysely";
import type { DatabaseSchema, ResponsesTable } from "../schema.js";
import { type ResponseRepository, type StoredResponse, UNFINISHED_RESPONSE_STATUSES } from "./types.js";

export class KyselyResponseRepository implements ResponseRepository {
  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  async save(response: StoredResponse): Promise<void> {
    const changing = {
      status: response.status,
      heartbeat_at: response.heartbeatAt,
      response_json: response.responseJson,
    };
    // A background response is saved when it is queued and again when it ends.
    await this.db
      .insertInto("responses")
      .values({
        id: response.id,
        project_id: response.projectId,
        created_at: response.createdAt,
        previous_response_id: response.previousResponseId,
        input_json: response.inputJson,
        ...changing,
      })
      .onConflict((c) => c.column("id").doUpdateSet(changing))
      .execute();
  }

  async get(projectId: string, id: string): Promise<StoredResponse | undefined> {
    const row = await this.db
      .selectFrom("responses")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst();
    return row ? toStored(row) : undefined;
  }

  async delete(projectId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom("responses")
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async heartbeat(ids: readonly string[], now: number): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .updateTable("responses")
      .set({ heartbeat_at: now })
      .where("id", "in", ids)
      .where("status", "in", UNFINISHED_RESPONSE_STATUSES)
      .execute();
  }

  async stale(before: number): Promise<StoredResponse[]> {
    const rows = await this.db
      .selectFrom("responses")
      .selectAll()
      .where("status", "in", UNFINISHED_RESPONSE_STATUSES)
      .where((eb) => eb.or([eb("heartbeat_at", "is", null), eb("heartbeat_at", "<", before)]))
      .limit(1000)
      .execute();
    return rows.map(toStored);
  }

  async finishUnfinished(id: string, status: string, responseJson: string): Promise<boolean> {
    const result = await this.db
      .updateTable("responses")
      .set({ status, response_json: responseJson, heartbeat_at: null })
      .where("id", "=", id)
      .where("status", "in", UNFINISHED_RESPONSE_STATUSES)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }
}

function toStored(row: Selectable<ResponsesTable>): StoredResponse {
  return {
    id: row.id,
    projectId: row.project_id,
    createdAt: Number(row.created_at),
    previousResponseId: row.previous_response_id,
    status: row.status,
    heartbeatAt: row.heartbeat_at === null ? null : Number(row.heartbeat_at),
    responseJson: row.response_json,
    inputJson: row.input_json,
  };
}
