import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { expect } from "vitest";
import { parse } from "yaml";
import { closeObjectSchemas, describeSchemaErrors, tagDiscriminatedUnions } from "./strict-json-schema.js";

/**
 * Validation of response bodies (ours) and request bodies (what Switchboard sends an
 * OpenAI-compatible upstream) against the official OpenAI OpenAPI spec, kept beside the repo at
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
let components: Record<string, unknown> | undefined;
let ajv: Ajv | undefined;
const validators = new Map<string, ValidateFunction>();
let warned = false;

/** The spec's `components.schemas`, parsed once per process (~3 MB), with `nullable` rewritten. */
function specSchemas(): Record<string, unknown> {
  if (components) return components;
  const document = parse(readFileSync(SPEC_PATH, "utf8"), { maxAliasCount: -1 }) as {
    components?: { schemas?: Record<string, unknown> };
  };
  const schemas = document.components?.schemas;
  if (!schemas) throw new Error(`${SPEC_PATH} has no components.schemas`);
  components = rewriteNullable(schemas) as Record<string, unknown>;
  return components;
}

/** Registers the spec's component schemas on a new ajv instance. */
function specAjv(): Ajv {
  if (ajv) return ajv;
  // strict:false lets ajv skip OpenAPI-only keywords (discriminator, example, x-*, deprecated).
  // validateSchema:false because OpenAPI 3.1 schemas are not all valid draft-07 meta-schema-wise.
  const instance = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  addFormats(instance);
  // Only components.schemas is registered: the rest of the document (paths, parameters) is not
  // JSON Schema, and `$ref: "#/components/schemas/X"` resolves inside this wrapper document.
  instance.addSchema({ $id: SPEC_ID, components: { schemas: specSchemas() } });
  ajv = instance;
  return instance;
}

function addFormats(instance: Ajv | Ajv2020): void {
  addFormatsModule.default(instance);
  // OpenAPI formats that only annotate a number or a string; they constrain nothing further here.
  for (const format of ["unixtime", "int64", "int32", "double", "float", "binary"]) {
    instance.addFormat(format, true);
  }
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
 * Parses the spec and compiles these validators now: the first parse blocks the process for
 * seconds, so a test whose server runs in the same process does it before the server starts
 * (a request waiting meanwhile would find its kept-alive connection timed out).
 */
export function prepareSpecValidators(...names: SpecSchemaName[]): void {
  if (!specAvailable) return;
  for (const name of names) validatorFor(name);
}

/**
 * Asserts that `value` matches the spec's `components.schemas[schemaName]`. Skipped (with one
 * warning per process) when the spec file is not there.
 */
export function expectMatchesSchema(value: unknown, schemaName: SpecSchemaName): void {
  if (!specAvailable) {
    const missing = specMissing("response");
    if (missing) expect.fail(missing);
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

/**
 * Without the spec: the failure to report when SWITCHBOARD_REQUIRE_SPEC=1, else undefined (after
 * one warning per process) and the check is skipped.
 */
function specMissing(what: "response" | "request"): string | undefined {
  if (process.env.SWITCHBOARD_REQUIRE_SPEC === "1") {
    return `The OpenAPI spec is required (SWITCHBOARD_REQUIRE_SPEC=1) but missing at ${SPEC_PATH}.`;
  }
  if (!warned) {
    warned = true;
    console.warn(`OpenAPI spec not found at ${SPEC_PATH}; skipping ${what} validation against it.`);
  }
  return undefined;
}

/** The request bodies an OpenAI-compatible upstream is sent, by the spec's name for them. */
export type SpecRequestSchemaName =
  | "CreateChatCompletionRequest"
  | "CreateCompletionRequest"
  | "CreateEmbeddingRequest";

/**
 * Fields beyond the spec that Switchboard forwards on purpose, as the caller spelled them
 * (vLLM and llama-server take them; README, "Sampling"): the only ones a request may add.
 */
const FORWARDED_EXTENSIONS: Readonly<Partial<Record<SpecRequestSchemaName, Record<string, object>>>> = {
  CreateChatCompletionRequest: {
    top_k: { type: "integer" },
    min_p: { type: "number" },
    repetition_penalty: { type: "number" },
  },
  CreateCompletionRequest: {
    top_k: { type: "integer" },
    min_p: { type: "number" },
    repetition_penalty: { type: "number" },
  },
};

let requestAjv: Ajv2020 | undefined;
const requestValidators = new Map<string, ValidateFunction>();

/**
 * The spec's schemas held strictly, for what Switchboard sends: every object schema closed where
 * the spec's composition allows (a property the spec does not define fails), unions told apart by
 * `role` / `type` checked against the branch they name. A second ajv instance over the same parse,
 * in draft 2020-12 (the spec is OpenAPI 3.1, and `unevaluatedProperties` needs 2019-09 or later);
 * response checks above keep their draft-07 instance.
 */
function specRequestAjv(): Ajv2020 {
  if (requestAjv) return requestAjv;
  const schemas = { ...specSchemas() };
  for (const [name, extensions] of Object.entries(FORWARDED_EXTENSIONS)) {
    const schema = schemas[name] as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, unknown>;
    schemas[name] = { ...schema, properties: { ...properties, ...extensions } };
  }
  const prefix = "#/components/schemas/";
  const closed = closeObjectSchemas(schemas, prefix);
  const resolve = (ref: string) =>
    ref.startsWith(prefix) ? (closed[ref.slice(prefix.length)] as Record<string, unknown>) : undefined;
  const tagged = Object.fromEntries(
    Object.entries(closed).map(([name, schema]) => [name, tagDiscriminatedUnions(schema, resolve)]),
  );
  const instance = new Ajv2020({
    strict: false,
    allErrors: true,
    validateSchema: false,
    discriminator: true,
  });
  addFormats(instance);
  instance.addSchema({ $id: SPEC_ID, components: { schemas: tagged } });
  requestAjv = instance;
  return instance;
}

function requestValidatorFor(name: SpecRequestSchemaName): ValidateFunction {
  let validate = requestValidators.get(name);
  if (!validate) {
    validate = specRequestAjv().compile({ $ref: `${SPEC_ID}#/components/schemas/${name}` });
    requestValidators.set(name, validate);
  }
  return validate;
}

/** Parses the spec and compiles the request validators now, before a server is listening. */
export function prepareSpecRequestValidators(): void {
  if (!specAvailable) return;
  for (const name of [
    "CreateChatCompletionRequest",
    "CreateCompletionRequest",
    "CreateEmbeddingRequest",
  ] as const)
    requestValidatorFor(name);
}

/**
 * What is wrong with a request body by the spec's `components.schemas[name]`, held strictly (see
 * specRequestAjv): one line per problem, JSON pointer first; none when it conforms. Without the
 * spec: nothing (one warning), or the missing spec itself when SWITCHBOARD_REQUIRE_SPEC=1.
 */
export function specRequestProblems(body: unknown, name: SpecRequestSchemaName): string[] {
  if (!specAvailable) {
    const missing = specMissing("request");
    return missing ? [missing] : [];
  }
  const validate = requestValidatorFor(name);
  return validate(body) ? [] : describeSchemaErrors(validate.errors);
}
