import { describe, expect, it } from "vitest";
import { boundedLines, checkBatchInput, MAX_BATCH_EMBEDDING_INPUTS } from "../../src/api/batches/input.js";
import type { LineContext } from "../../src/api/batches/line-runner.js";
import type { Principal } from "../../src/auth/principal.js";
import type { GenerationService } from "../../src/generation/service.js";
import { NO_LIMITS } from "../../src/storage/repositories/types.js";

async function* chunks(...parts: (string | Buffer)[]): AsyncIterable<Buffer> {
  for (const part of parts) yield Buffer.isBuffer(part) ? part : Buffer.from(part);
}

async function collect(source: AsyncIterable<string | null>): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for await (const line of source) out.push(line);
  return out;
}

const principal: Principal = {
  projectId: "proj_x",
  keyId: null,
  role: "member",
  allowedModels: null,
  keyLimits: NO_LIMITS,
  projectLimits: NO_LIMITS,
};

/** Line checks with every model allowed: only the file and the bodies are under test. */
function context(maxLineBytes = 1024 * 1024): LineContext {
  return {
    generation: { checkModel: () => {} } as unknown as GenerationService,
    responses: {} as LineContext["responses"],
    ids: {} as LineContext["ids"],
    now: Date.now,
    maxN: 8,
    maxLineBytes,
  };
}

describe("batch input lines", () => {
  it("splits on newlines across chunks, drops a \\r before one, and keeps characters split between chunks whole", async () => {
    const euro = Buffer.from("€");
    const lines = await collect(
      boundedLines(
        chunks(
          "first\r\nsec",
          "ond\n",
          Buffer.concat([Buffer.from("a"), euro.subarray(0, 1)]),
          euro.subarray(1),
          "\nlast",
        ),
        100,
      ),
    );
    expect(lines).toEqual(["first", "second", "a€", "last"]);
  });

  it("gives a line over the limit as null without holding it, and goes on with the next", async () => {
    const long = "x".repeat(40);
    const lines = await collect(
      boundedLines(chunks("ok\n", long.slice(0, 25), `${long.slice(25)}\nafter\n`), 30),
    );
    expect(lines).toEqual(["ok", null, "after"]);
  });

  it("reports a line longer than a request body may be by its number, and checks the others", async () => {
    const line = (id: string, content: string) =>
      JSON.stringify({
        custom_id: id,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "m", messages: [{ role: "user", content }] },
      });
    const text = `${line("a", "hi")}\n${line("b", "y".repeat(500))}\n${line("c", "hi")}\n`;
    const checked = await checkBatchInput(chunks(text), "/v1/chat/completions", principal, context(300));
    expect(checked.errors).toEqual([expect.objectContaining({ code: "line_too_long", line: 2 })]);
    expect(checked.lines.map((l) => l.customId)).toEqual(["a", "c"]);
  });

  it("refuses an embeddings batch with more inputs across its lines than OpenAI allows", async () => {
    // 2048 inputs a request (the online limit): the line that passes 50,000 in all is refused.
    const perLine = 2048;
    const line = (id: string) =>
      JSON.stringify({
        custom_id: id,
        method: "POST",
        url: "/v1/embeddings",
        body: { model: "e", input: Array.from({ length: perLine }, () => "w") },
      });
    const over = Math.floor(MAX_BATCH_EMBEDDING_INPUTS / perLine) + 1;
    const text = Array.from({ length: over + 1 }, (_, i) => line(`l${i}`)).join("\n");
    const checked = await checkBatchInput(chunks(text), "/v1/embeddings", principal, context());
    expect(checked.errors).toEqual([expect.objectContaining({ code: "too_many_inputs", line: over })]);
  });
});
