import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { expect } from "vitest";
import { parse } from "yaml";

/**
 * Validation of response bodies against the official OpenAI OpenAPI spec, kept beside the repo at
 * ../shared/spec/openapi.yaml (override with SWITCHBOARD_OPENAPI_SPEC). Without the file the
 * checks are skipped with one warning — unless SWITCHBOARD_REQUIRE_SPEC=1 (as CI sets), when a
 * missing spec fails every check that would have used it instead of passing vacuously.
 */
export const SPEC_PATH =
  process.env.SWITCHBOARD_OPENAPI_SPEC ??
  fileURLToPath(new URL("../../../shared/spec/openapi.yaml", import.meta.url));

export const specAvailable = existsSync(SPEC_PATH);

/** The schemas the conformance suite checks bodies against. */
export type SpecSchemaName =
  | "ListModelsResponse"
  | "Model"
  | "CreateChatCompletionResponse"
  | "CreateChatCompletionStreamResponse"
  | "CreateCompletionResponse"
  | "CreateEmbeddingResponse"
  | "Response"
  | "ErrorResponse"
  | "VectorStoreObject"
  | "VectorStoreFileObject"
  | "VectorStoreFileBatchObject"
  | "VectorStoreSearchResultsPage"
  | "VectorStoreFileContentResponse";

const SPEC_ID = "spec";
let ajv: Ajv | undefined;
const validators = new Map<string, ValidateFunction>();
let warned = false;

/** Parses the ~3 MB spec once per process and registers its component schemas. */
function specAjv(): Ajv {
  if (ajv) return ajv;
  const document = parse(readFileSync(SPEC_PATH, "utf8"), { maxAliasCount: -1 }) as {
    components?: { schemas?: Record<string, unknown> };
  };
  const schemas = document.components?.schemas;
  if (!schemas) throw new Error(`${SPEC_PATH} has no components.schemas`);
  // strict:false lets ajv skip OpenAPI-only keywords (discriminator, example, x-*, deprecated).
  // validateSchema:false because OpenAPI 3.1 schemas are not all valid draft-07 meta-schema-wise.
  const instance = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  addFormatsModule.default(instance);
  // OpenAPI formats that only annotate a number or a string; they constrain nothing further here.
  for (const format of ["unixtime", "int64", "int32", "double", "float", "binary"]) {
    instance.addFormat(format, true);
  }
  // Only components.schemas is registered: the rest of the document (paths, parameters) is not
  // JSON Schema, and `$ref: "#/components/schemas/X"` resolves inside this wrapper document.
  instance.addSchema({ $id: SPEC_ID, components: { schemas: rewriteNullable(schemas) } });
  ajv = instance;
  return instance;
}

/**
 * OpenAPI 3.0's `nullable: true` (still used in parts of this 3.1 spec) means "or null". ajv's own
 * `nullable` support needs a sibling `type` and does not extend `enum`, so `{ $ref, nullable }` does
 * not compile and `{ enum: [..], nullable }` rejects null. Rewrite it as `anyOf: [schema, null]`.
 */
function rewriteNullable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteNullable);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (key !== "nullable") out[key] = rewriteNullable(child);
  }
  if ((value as { nullable?: unknown }).nullable !== true) return out;
  // Keep annotation keys (description, etc.) outside; they do not matter to validation.
  return { anyOf: [out, { type: "null" }] };
}

function validatorFor(name: string): ValidateFunction {
  let validate = validators.get(name);
  if (!validate) {
    validate = specAjv().compile({ $ref: `${SPEC_ID}#/components/schemas/${name}` });
    validators.set(name, validate);
  }
  return validate;
}

/**
 * Asserts that `value` matches the spec's `components.schemas[schemaName]`. Skipped (with one
 * warning per process) when the spec file is not there.
 */
/**
 * Parses the spec and compiles these validators now: the first parse blocks the process for
 * seconds, so a test whose server runs in the same process does it before the server starts
 * (a request waiting meanwhile would find its kept-alive connection timed out).
 */
export function prepareSpecValidators(...names: SpecSchemaName[]): void {
  if (!specAvailable) return;
  for (const name of names) validatorFor(name);
}

export function expectMatchesSchema(value: unknown, schemaName: SpecSchemaName): void {
  if (!specAvailable) {
    if (process.env.SWITCHBOARD_REQUIRE_SPEC === "1") {
      expect.fail(`The OpenAPI spec is required (SWITCHBOARD_REQUIRE_SPEC=1) but missing at ${SPEC_PATH}.`);
    }
    if (!warned) {
      warned = true;
      console.warn(`OpenAPI spec not found at ${SPEC_PATH}; skipping response validation against it.`);
    }
    return;
  }
  const validate = validatorFor(schemaName);
  // JSON round trip: the SDK hands back plain parsed JSON, but a class instance or undefined
  // field must be judged as it appears on the wire.
  const wire = JSON.parse(JSON.stringify(value)) as unknown;
  if (!validate(wire)) {
    const problems = (validate.errors ?? []).map(
      (e) => `${e.instancePath || "(root)"} ${e.message ?? ""} ${JSON.stringify(e.params)}`,
    );
    expect.fail(`response does not match ${schemaName}:\n${problems.join("\n")}\n${JSON.stringify(wire)}`);
  }
}
