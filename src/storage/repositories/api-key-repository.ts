import type { Kysely, Selectable } from "kysely";
import type { ApiKeysTable, DatabaseSchema } from "../schema.js";
import { limitColumns, limitsFromRow, NO_LIMIT_COLUMNS } from "./limit-columns.js";
import type { ApiKey, ApiKeyRepository, Limits, NewApiKey } from "./types.js";

export class KyselyApiKeyRepository implements ApiKeyRepository {
  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  async create(input: NewApiKey): Promise<ApiKey> {
    const row = await this.db
      .insertInto("api_keys")
      .values({
        id: input.id,
        project_id: input.projectId,
        name: input.name,
        key_hash: input.keyHash,
        key_hint: input.keyHint,
        role: input.role,
        allowed_models: input.allowedModels ? JSON.stringify(input.allowedModels) : null,
        created_at: input.now,
        expires_at: input.expiresAt,
        revoked_at: null,
        last_used_at: null,
        ...NO_LIMIT_COLUMNS,
        ...limitColumns(input.limits),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toApiKey(row);
  }

  async findByHash(keyHash: string) {
    const row = await this.db
      .selectFrom("api_keys")
      .selectAll()
      .where("key_hash", "=", keyHash)
      .executeTakeFirst();
    return row ? { ...toApiKey(row), keyHash: row.key_hash } : undefined;
  }

  async get(projectId: string, keyId: string) {
    const row = await this.db
      .selectFrom("api_keys")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", keyId)
      .executeTakeFirst();
    return row ? toApiKey(row) : undefined;
  }

  async list(projectId: string) {
    const rows = await this.db
      .selectFrom("api_keys")
      .selectAll()
      .where("project_id", "=", projectId)
      .orderBy("created_at")
      .orderBy("id")
      .execute();
    return rows.map(toApiKey);
  }

  async update(
    projectId: string,
    keyId: string,
    patch: {
      name?: string;
      allowedModels?: string[] | null;
      expiresAt?: number | null;
      limits?: Partial<Limits>;
    },
  ) {
    const values = {
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.allowedModels !== undefined
        ? { allowed_models: patch.allowedModels ? JSON.stringify(patch.allowedModels) : null }
        : {}),
      ...(patch.expiresAt !== undefined ? { expires_at: patch.expiresAt } : {}),
      ...limitColumns(patch.limits),
    };
    if (Object.keys(values).length === 0) return this.get(projectId, keyId);
    const row = await this.db
      .updateTable("api_keys")
      .set(values)
      .where("project_id", "=", projectId)
      .where("id", "=", keyId)
      .returningAll()
      .executeTakeFirst();
    return row ? toApiKey(row) : undefined;
  }

  async revoke(projectId: string, keyId: string, now: number) {
    const result = await this.db
      .updateTable("api_keys")
      .set({ revoked_at: now })
      .where("project_id", "=", projectId)
      .where("id", "=", keyId)
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async touch(keyIds: string[], now: number) {
    if (keyIds.length === 0) return;
    await this.db.updateTable("api_keys").set({ last_used_at: now }).where("id", "in", keyIds).execute();
  }

  async countActive(now: number) {
    const row = await this.db
      .selectFrom("api_keys")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("revoked_at", "is", null)
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

function toApiKey(row: Selectable<ApiKeysTable>): ApiKey {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    keyHint: row.key_hint,
    role: row.role,
    allowedModels: row.allowed_models ? (JSON.parse(row.allowed_models) as string[]) : null,
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
    limits: limitsFromRow(row),
  };
}
