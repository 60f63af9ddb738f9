import { NotFoundError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectMatchesSchema, specAvailable } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_ALIAS, TINY_MODEL } from "../helpers/test-server.js";

describe("GET /v1/models and /v1/models/{id} through the official SDK", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("lists the configured model as an OpenAI model list", async () => {
    const page = await t.client.models.list();
    const ids = page.data.map((m) => m.id);
    expect(ids).toContain(TINY_MODEL);
    // Aliases find a model but are not listed as models of their own.
    expect(ids).not.toContain(TINY_ALIAS);
    const tiny = page.data.find((m) => m.id === TINY_MODEL);
    expect(tiny?.object).toBe("model");
    expect(Number.isInteger(tiny?.created)).toBe(true);
    expect(tiny?.created).toBeGreaterThan(1_600_000_000);
    expect(typeof tiny?.owned_by).toBe("string");
  });

  it("answers the list with a body that matches ListModelsResponse", async () => {
    const response = await t.client.models.list().asResponse();
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await response.json()) as { object: string };
    expect(body.object).toBe("list");
    expectMatchesSchema(body, "ListModelsResponse");
  });

  it("retrieves a model by its id", async () => {
    const model = await t.client.models.retrieve(TINY_MODEL);
    expect(model).toMatchObject({ id: TINY_MODEL, object: "model" });
    expectMatchesSchema(model, "Model");
  });

  it("retrieves a model by an alias and reports it under its own id", async () => {
    const byAlias = await t.client.models.retrieve(TINY_ALIAS);
    const byId = await t.client.models.retrieve(TINY_MODEL);
    expect(byAlias).toEqual(byId);
    expectMatchesSchema(byAlias, "Model");
  });

  it("answers an unknown model with NotFoundError 404 model_not_found naming param model", async () => {
    const err = await t.client.models.retrieve("no-such-model").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    const notFound = err as NotFoundError;
    expect(notFound.status).toBe(404);
    expect(notFound.code).toBe("model_not_found");
    expect(notFound.param).toBe("model");
    expect(notFound.message).toContain("no-such-model");
    expect(notFound.headers.get("content-type")).toMatch(/^application\/json/);
    expectMatchesSchema({ error: notFound.error }, "ErrorResponse");
  });

  // OpenAI answers model_not_found with type invalid_request_error.
  it("types model_not_found as invalid_request_error, as OpenAI does", async () => {
    const err = (await t.client.models.retrieve("no-such-model").catch((e: unknown) => e)) as NotFoundError;
    expect(err.type).toBe("invalid_request_error");
  });

  it("puts x-request-id and openai-processing-ms on model responses", async () => {
    const { data, response, request_id } = await t.client.models.retrieve(TINY_MODEL).withResponse();
    expect(data.id).toBe(TINY_MODEL);
    expect(request_id).toBeTruthy();
    expect(response.headers.get("x-request-id")).toBe(request_id);
    expect(response.headers.get("openai-processing-ms")).toMatch(/^\d+(\.\d+)?$/);
  });

  // Guards against a validator that passes everything (a $ref that resolves to nothing, say).
  it.skipIf(!specAvailable)("has a spec check that rejects a model with the wrong field types", () => {
    const model = { id: TINY_MODEL, object: "model", created: 1_700_000_000, owned_by: "switchboard" };
    expectMatchesSchema(model, "Model");
    expect(() => expectMatchesSchema({ ...model, created: "yesterday" }, "Model")).toThrow(/created/);
    expect(() => expectMatchesSchema({ ...model, object: "list" }, "Model")).toThrow(/object/);
    expect(() => expectMatchesSchema({ object: "list", data: [{ id: 1 }] }, "ListModelsResponse")).toThrow();
    expect(() => expectMatchesSchema({ error: { message: "m", type: "t" } }, "ErrorResponse")).toThrow(
      /param/,
    );
  });
});
