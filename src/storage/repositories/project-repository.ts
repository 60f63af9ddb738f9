import type { Kysely, Selectable } from "kysely";
import type { DatabaseSchema, ProjectsTable } from "../schema.js";
import { limitColumns, limitsFromRow, NO_LIMIT_COLUMNS } from "./limit-columns.js";
import type { Limits, Project, ProjectRepository } from "./types.js";

export class KyselyProjectRepository implements ProjectRepository {
  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  async create(input: { id: string; name: string; limits?: Partial<Limits>; now: number }) {
    const row = await this.db
      .insertInto("projects")
      .values({
        id: input.id,
        name: input.name,
        created_at: input.now,
        archived_at: null,
        ...NO_LIMIT_COLUMNS,
        ...limitColumns(input.limits),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toProject(row);
  }

  async get(projectId: string) {
    const row = await this.db
      .selectFrom("projects")
      .selectAll()
      .where("id", "=", projectId)
      .executeTakeFirst();
    return row ? toProject(row) : undefined;
  }

  async list(options: { includeArchived?: boolean } = {}) {
    let query = this.db.selectFrom("projects").selectAll().orderBy("created_at").orderBy("id");
    if (!options.includeArchived) query = query.where("archived_at", "is", null);
    return (await query.execute()).map(toProject);
  }

  async update(projectId: string, patch: { name?: string; limits?: Partial<Limits> }) {
    const values = {
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...limitColumns(patch.limits),
    };
    if (Object.keys(values).length === 0) return this.get(projectId);
    const row = await this.db
      .updateTable("projects")
      .set(values)
      .where("id", "=", projectId)
      .returningAll()
      .executeTakeFirst();
    return row ? toProject(row) : undefined;
  }

  async archive(projectId: string, now: number) {
    const result = await this.db
      .updateTable("projects")
      .set({ archived_at: now })
      .where("id", "=", projectId)
      .where("archived_at", "is", null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }
}

function toProject(row: Selectable<ProjectsTable>): Project {
  return {
    id: row.id,
    name: row.name,
    createdAt: Number(row.created_at),
    archivedAt: row.archived_at === null ? null : Number(row.archived_at),
    limits: limitsFromRow(row),
  };
}
