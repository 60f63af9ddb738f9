import { readFileSync } from "node:fs";
import { Ajv, type ValidateFunction } from "ajv";
import { expect } from "vitest";
import { type SpecRequestSchemaName, specRequestProblems } from "../../helpers/openapi.js";
import { describeSchemaErrors, tagDiscriminatedUnions } from "../../helpers/strict-json-schema.js";

/**
 * What the mock upstreams hold each request Switchboard sends them to: for Anthropic and Gemini,
 * JSON Schemas generated from the official SDKs' TypeScript types (test/providers/schemas/,
 * `npm run schemas:providers`); for OpenAI-compatible upstreams, the OpenAI OpenAPI spec. Both
 * strictly: a property the provider does not define fails.
 */

/** The generated schema files, by the request they describe. */
export const SDK_REQUEST_SCHEMAS = {
  "anthropic-messages": "anthropic-messages-request.schema.json",
  "gemini-generate-content": "gemini-generate-content-request.schema.json",
  "gemini-batch-embed-contents": "gemini-batch-embed-contents-request.schema.json",
} as const;

export type SdkRequestSchemaName = keyof typeof SDK_REQUEST_SCHEMAS;
export type UpstreamRequestSchema = SdkRequestSchemaName | SpecRequestSchemaName;

/** Where a generated schema file says it came from. */
export interface SchemaProvenance {
  sdk: string;
  version: string;
  type: string;
  types: string;
  typesSha256: string;
}

export const schemaFileUrl = (file: string) => new URL(`../schemas/${file}`, import.meta.url);

export function readSdkSchema(
  file: string,
): Record<string, unknown> & { "x-generated-from": SchemaProvenance } {
  return JSON.parse(readFileSync(schemaFileUrl(file), "utf8"));
}

const validators = new Map<SdkRequestSchemaName, ValidateFunction>();

function sdkValidator(name: SdkRequestSchemaName): ValidateFunction {
  let validate = validators.get(name);
  if (validate) return validate;
  const { "x-generated-from": _provenance, ...schema } = readSdkSchema(SDK_REQUEST_SCHEMAS[name]);
  const definitions = (schema.definitions ?? {}) as Record<string, Record<string, unknown>>;
  const prefix = "#/definitions/";
  const tagged = tagDiscriminatedUnions(schema, (ref) =>
    // The generator escapes names such as `Pick<…>` in its refs.
    ref.startsWith(prefix) ? definitions[decodeURIComponent(ref.slice(prefix.length))] : undefined,
  ) as Record<string, unknown>;
  // strict:false: the generator's `$comment` and unions of types are fine as they are.
  validate = new Ajv({ strict: false, allErrors: true, discriminator: true }).compile(tagged);
  validators.set(name, validate);
  return validate;
}

/** Compiles these validators now, before a server is listening, rather than on its first request. */
export function prepareSdkRequestValidators(...names: SdkRequestSchemaName[]): void {
  for (const name of names) sdkValidator(name);
}

/** What is wrong with `body` by that schema: one line per problem, JSON pointer first; none if it conforms. */
export function requestProblems(body: unknown, schema: UpstreamRequestSchema): string[] {
  if (schema in SDK_REQUEST_SCHEMAS) {
    const validate = sdkValidator(schema as SdkRequestSchemaName);
    return validate(body) ? [] : describeSchemaErrors(validate.errors);
  }
  return specRequestProblems(body, schema as SpecRequestSchemaName);
}

/** A mock upstream that checks what it is sent. */
export interface SchemaCheckedUpstream {
  /** One readable report per request that did not match its schema (emptied by the test). */
  violations: string[];
}

/**
 * Checks a request a mock received. A mismatch is recorded on the mock (for
 * expectRequestsConform) and returned, as the message the mock answers 400 with: the provider
 * would refuse it too, so the test fails where it happened and says why.
 */
export function checkUpstreamRequest(
  mock: SchemaCheckedUpstream,
  request: { method?: string; path: string; body: unknown },
  schema: UpstreamRequestSchema,
): string | undefined {
  const problems = requestProblems(request.body, schema);
  if (problems.length === 0) return undefined;
  const report = [
    `Switchboard sent ${request.method ?? "POST"} ${request.path} a body that does not match ${schema}:`,
    ...problems.map((line) => `  ${line}`),
    `  body: ${clip(JSON.stringify(request.body), 2000)}`,
  ].join("\n");
  mock.violations.push(report);
  return report;
}

/** For afterEach: every request these mocks received matched its schema. */
export function expectRequestsConform(...mocks: (SchemaCheckedUpstream | undefined)[]): void {
  const reports = mocks.flatMap((mock) => mock?.violations.splice(0) ?? []);
  if (reports.length > 0) expect.fail(reports.join("\n\n"));
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}…` : text);
