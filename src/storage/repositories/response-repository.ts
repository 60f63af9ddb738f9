import type { Kysely } from "kysely";
import type { DatabaseSchema } from "../schema.js";
import type { ResponseRepository, StoredResponse } from "./types.js";

export class KyselyResponseRepository implements ResponseRepository {
  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  async save(response: StoredResponse): Promise<void> {
    const values = {
      project_id: response.projectId,
      created_at: response.createdAt,
      previous_response_id: response.previousResponseId,
      response_json: response.responseJson,
      input_json: response.inputJson,
    };
    // A background response is saved when it starts and again when it ends.
    await this.db
      .insertInto("responses")
      .values({ id: response.id, ...values })
      .onConflict((c) => c.column("id").doUpdateSet({ response_json: values.response_json }))
      .execute();
  }

  async get(projectId: string, id: string): Promise<StoredResponse | undefined> {
    const row = await this.db
      .selectFrom("responses")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      id: row.id,
      projectId: row.project_id,
      createdAt: Number(row.created_at),
      previousResponseId: row.previous_response_id,
      responseJson: row.response_json,
      inputJson: row.input_json,
    };
  }

  async delete(projectId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom("responses")
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}
