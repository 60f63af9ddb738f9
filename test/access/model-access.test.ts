import { NotFoundError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AccessServer,
  type CreatedKey,
  call,
  chat,
  expectError,
  sdkClient,
  startAccessServer,
} from "../helpers/access.js";
import { TINY_ALIAS, TINY_MODEL } from "../helpers/test-server.js";

/**
 * Model allow-lists: a key may use the models its list names (by id or alias); other models are
 * hidden from it: 404 model_not_found on chat and in /v1/models, exactly as a model that does not
 * exist, so a key cannot confirm which models are configured.
 */
describe("per-key model allow-lists", () => {
  let t: AccessServer;
  let tinyOnly: CreatedKey;
  let aliasOnly: CreatedKey;
  let otherOnly: CreatedKey;
  let nothing: CreatedKey;
  let everything: CreatedKey;

  beforeAll(async () => {
    // A second model, so a key can be limited to one that is not the tiny model.
    t = await startAccessServer({ extraModels: [{ id: "some-other-model" }] });
    const { project } = await t.admin.projectWithKey();
    tinyOnly = await t.admin.createKey(project.id, { allowed_models: [TINY_MODEL] });
    aliasOnly = await t.admin.createKey(project.id, { allowed_models: [TINY_ALIAS] });
    otherOnly = await t.admin.createKey(project.id, { allowed_models: ["some-other-model"] });
    nothing = await t.admin.createKey(project.id, { allowed_models: [] });
    everything = await t.admin.createKey(project.id, { allowed_models: null });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("lets a key chat with an allowed model by its id and by its alias", async () => {
    for (const key of [tinyOnly, aliasOnly, everything]) {
      for (const model of [TINY_MODEL, TINY_ALIAS]) {
        const completion = await sdkClient(t.url, key.secret).chat.completions.create({
          model,
          messages: [{ role: "user", content: "Hi" }],
          max_tokens: 2,
        });
        expect(completion.model).toBe(model);
      }
      const stream = await call(t.url, "POST", "/v1/chat/completions", {
        key: key.secret,
        body: { model: TINY_MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 2, stream: true },
      });
      expect(stream.status).toBe(200);
      expect(stream.text).toContain("data: [DONE]");
    }
  });

  it("answers other models with 404 model_not_found, as for a model that does not exist, streaming or not", async () => {
    for (const key of [otherOnly, nothing]) {
      for (const model of [TINY_MODEL, TINY_ALIAS]) {
        for (const stream of [false, true]) {
          const res = await chat(t.url, key.secret, { model, stream });
          expectError(res, 404, { code: "model_not_found", type: "invalid_request_error", param: "model" });
          const unknown = await chat(t.url, key.secret, { model: "no-such-model", stream });
          expectError(unknown, 404, { code: "model_not_found", param: "model" });
          expect(res.body.error.message.replace(model, "X")).toBe(
            unknown.body.error.message.replace("no-such-model", "X"),
          );
        }
      }
      const err = await sdkClient(t.url, key.secret)
        .chat.completions.create({ model: TINY_MODEL, messages: [{ role: "user", content: "Hi" }] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as NotFoundError).code).toBe("model_not_found");
    }
  });

  it("hides the model from every other route too: completions, token counts, the tokenizer", async () => {
    for (const key of [otherOnly, nothing]) {
      for (const [path, body] of [
        ["/v1/completions", { model: TINY_MODEL, prompt: "Hi", max_tokens: 2 }],
        [
          "/v1/chat/completions/input_tokens",
          { model: TINY_MODEL, messages: [{ role: "user", content: "Hi" }] },
        ],
        ["/tokenize", { model: TINY_MODEL, content: "Hi" }],
        ["/detokenize", { model: TINY_MODEL, tokens: [5] }],
      ] as const) {
        expectError(await call(t.url, "POST", path, { key: key.secret, body }), 404, {
          code: "model_not_found",
        });
      }
    }
    expect(
      (
        await call(t.url, "POST", "/tokenize", {
          key: tinyOnly.secret,
          body: { model: TINY_MODEL, content: "Hi" },
        })
      ).status,
    ).toBe(200);
  });

  it("shows a key only the models it may use", async () => {
    for (const [key, listed] of [
      [tinyOnly, [TINY_MODEL]],
      [aliasOnly, [TINY_MODEL]],
      [everything, [TINY_MODEL, "some-other-model"]],
    ] as const) {
      const page = await sdkClient(t.url, key.secret).models.list();
      expect(page.data.map((m) => m.id)).toEqual(listed);
      expect((await sdkClient(t.url, key.secret).models.retrieve(TINY_ALIAS)).id).toBe(TINY_MODEL);
    }
    for (const key of [otherOnly, nothing]) {
      const page = await sdkClient(t.url, key.secret).models.list();
      expect(page.data.map((m) => m.id)).not.toContain(TINY_MODEL);
      for (const model of [TINY_MODEL, TINY_ALIAS]) {
        const res = await call(t.url, "GET", `/v1/models/${model}`, { key: key.secret });
        expectError(res, 404, { code: "model_not_found", param: "model" });
        // Exactly what an unknown model gets: the key cannot tell the model exists.
        const unknown = await call(t.url, "GET", "/v1/models/no-such-model", { key: key.secret });
        expect(res.body.error.message.replace(model, "X")).toBe(
          unknown.body.error.message.replace("no-such-model", "X"),
        );
      }
      const err = await sdkClient(t.url, key.secret)
        .models.retrieve(TINY_MODEL)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
    }
  });

  it("applies an allow-list change at once", async () => {
    const key = await t.admin.createKey(tinyOnly.project_id, { allowed_models: [TINY_MODEL] });
    expect((await chat(t.url, key.secret)).status).toBe(200);
    const patched = await t.admin.request("PATCH", `/admin/projects/${key.project_id}/keys/${key.id}`, {
      allowed_models: ["some-other-model"],
    });
    expect(patched.status).toBe(200);
    expectError(await chat(t.url, key.secret), 404, { code: "model_not_found" });
  });
});
