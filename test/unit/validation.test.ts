import { describe, expect, it } from "vitest";
import { z } from "zod";
import { chatRequestSchema } from "../../src/api/chat/schema.js";
import { ServiceError } from "../../src/core/errors.js";
import { formatPath, parseBody } from "../../src/http/validation.js";

/** The ServiceError parseBody throws for the body. */
function rejection(schema: z.ZodType, body: unknown): ServiceError {
  try {
    parseBody(schema, body);
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).status).toBe(400);
    return err as ServiceError;
  }
  throw new Error(`expected ${JSON.stringify(body)} to be rejected`);
}

const user = { role: "user", content: "Hi" };

describe("parseBody", () => {
  it("returns the parsed body", () => {
    const body = { model: "m", messages: [user], temperature: 0.2 };
    expect(parseBody(chatRequestSchema, body)).toMatchObject(body);
  });

  it("refuses a body that is not a JSON object", () => {
    for (const body of [null, [], "text", 3]) {
      const error = rejection(chatRequestSchema, body);
      expect(error.code).toBe("invalid_body");
      expect(error.param).toBeNull();
    }
  });

  it("names an unrecognized key, top level or nested", () => {
    const top = rejection(chatRequestSchema, { model: "m", messages: [user], temprature: 1 });
    expect(top.message).toBe("Unrecognized request argument supplied: temprature");
    expect(top.param).toBe("temprature");
    expect(top.code).toBe("unknown_parameter");

    const nested = rejection(chatRequestSchema, { model: "m", messages: [user, { ...user, extra: 1 }] });
    expect(nested.message).toBe("Unrecognized request argument supplied: messages[1].extra");
    expect(nested.param).toBe("messages[1].extra");
  });

  it("reports a missing required parameter", () => {
    const error = rejection(chatRequestSchema, { model: "m" });
    expect(error.message).toBe("Missing required parameter: 'messages'.");
    expect(error.param).toBe("messages");
    expect(error.code).toBe("missing_required_parameter");

    const content = rejection(chatRequestSchema, { model: "m", messages: [{ role: "user" }] });
    expect(content.message).toBe("Missing required parameter: 'messages[0].content'.");
    expect(content.param).toBe("messages[0].content");

    const role = rejection(chatRequestSchema, { model: "m", messages: [{ content: "Hi" }] });
    expect(role.param).toBe("messages[0].role");
    expect(role.code).toBe("missing_required_parameter");
  });

  it("reports a value of the wrong type as invalid, not as missing", () => {
    const error = rejection(chatRequestSchema, { model: "m", messages: [user], temperature: "hot" });
    expect(error.code).toBe("invalid_value");
    expect(error.param).toBe("temperature");
    expect(error.message).toMatch(/^Invalid value for 'temperature': /);

    const nullModel = rejection(chatRequestSchema, { model: null, messages: [user] });
    expect(nullModel.code).toBe("invalid_value");
    expect(nullModel.param).toBe("model");
  });

  it("formats the path of a nested invalid value as clients print it", () => {
    const error = rejection(chatRequestSchema, {
      model: "m",
      messages: [user, { role: "user", content: 5 }],
    });
    expect(error.param).toBe("messages[1].content");
    expect(error.code).toBe("invalid_value");
    expect(error.message).toMatch(/^Invalid value for 'messages\[1\]\.content': /);

    const range = rejection(chatRequestSchema, { model: "m", messages: [user], top_p: 2 });
    expect(range.param).toBe("top_p");
    expect(range.code).toBe("invalid_value");
  });

  it("a problem with the whole body has no param", () => {
    const schema = z.object({ a: z.number() }).refine((v) => v.a > 1, "a must exceed 1");
    const error = rejection(schema, { a: 1 });
    expect(error.param).toBeNull();
    expect(error.message).toBe("a must exceed 1");
  });
});

describe("formatPath", () => {
  it("writes keys with dots and indexes with brackets", () => {
    expect(formatPath([])).toBe("");
    expect(formatPath(["messages", 0, "content"])).toBe("messages[0].content");
    expect(formatPath(["messages", 2, "content", 1, "image_url", "url"])).toBe(
      "messages[2].content[1].image_url.url",
    );
    expect(formatPath([0, "a"])).toBe("[0].a");
  });
});
