import { RateLimitError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AccessServer,
  type CreatedKey,
  call,
  chat,
  chatBody,
  expectError,
  type HttpResult,
  sdkClient,
  startAccessServer,
  totalTokens,
} from "../helpers/access.js";
import { TINY_MODEL } from "../helpers/test-server.js";
import { waitFor } from "../helpers/wait-for.js";

/**
 * Per-key and per-project limits on one instance (the in-memory limit store): requests and
 * tokens per minute, concurrent requests and monthly budgets → 429 with retry-after,
 * retry-after-ms and x-ratelimit-* headers; tokens reserved up front and refunded after.
 */

/** $1 per prompt token and $2 per completion token: costs are easy to add up. */
const PRICING = { input_per_million_usd: 1_000_000, output_per_million_usd: 2_000_000 };

const DURATION = /^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$/;

function expectRateLimited(res: HttpResult, kind: "requests" | "tokens", limit: number): void {
  expectError(res, 429, { code: "rate_limit_exceeded", type: "rate_limit_error", param: null });
  expect(res.headers.get(`x-ratelimit-limit-${kind}`)).toBe(String(limit));
  expect(res.headers.get(`x-ratelimit-remaining-${kind}`)).toBe("0");
  expect(res.headers.get(`x-ratelimit-reset-${kind}`)).toMatch(DURATION);
}

function expectRetryAfter(res: HttpResult, maxMs: number): number {
  const seconds = Number(res.headers.get("retry-after"));
  const ms = Number(res.headers.get("retry-after-ms"));
  expect(Number.isInteger(seconds) && seconds >= 1, `retry-after ${seconds}`).toBe(true);
  expect(Number.isInteger(ms) && ms > 0 && ms <= maxMs, `retry-after-ms ${ms}`).toBe(true);
  expect(seconds).toBe(Math.max(1, Math.ceil(ms / 1000)));
  return ms;
}

/** Opens a streaming chat request and reads until the first content frame. */
async function openStream(
  url: string,
  key: string,
  maxTokens: number,
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; abort: () => void; finished: Promise<string> }> {
  const controller = new AbortController();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...extraHeaders },
    body: JSON.stringify(chatBody({ max_tokens: maxTokens, stream: true })),
    signal: controller.signal,
  });
  if (res.status !== 200) {
    const text = await res.text();
    return { status: res.status, headers: res.headers, abort: () => {}, finished: Promise.resolve(text) };
  }
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes('"content"')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  const finished = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    } catch {
      // Aborted by the test.
    }
    return text;
  })();
  return { status: res.status, headers: res.headers, abort: () => controller.abort(), finished };
}

describe("limits on one instance", () => {
  let t: AccessServer;
  /** Prompt tokens of the standard chat body. */
  let promptTokens: number;

  beforeAll(async () => {
    // A longer context, so that one request can reserve (and run for) many tokens.
    t = await startAccessServer({ model: { context_size: 2048, pricing: PRICING } });
    const { key } = await t.admin.projectWithKey();
    const res = await chat(t.url, key.secret, { max_tokens: 1 });
    promptTokens = res.body.usage.prompt_tokens;
    expect(promptTokens).toBeGreaterThan(0);
  });
  afterAll(async () => {
    await t?.stop();
  });

  const newKey = async (keyLimits: Record<string, unknown>, projectLimits?: Record<string, unknown>) =>
    (await t.admin.projectWithKey(projectLimits, { limits: keyLimits })).key;

  it("refuses the third request of a key limited to 2 per minute, with retry and rate-limit headers", async () => {
    const key = await newKey({ requests_per_minute: 2 });
    const first = await chat(t.url, key.secret);
    expect(first.status).toBe(200);
    expect(first.headers.get("x-ratelimit-limit-requests")).toBe("2");
    expect(first.headers.get("x-ratelimit-remaining-requests")).toBe("1");
    expect(first.headers.get("x-ratelimit-reset-requests")).toMatch(DURATION);
    // No token limit, no token headers.
    expect(first.headers.get("x-ratelimit-limit-tokens")).toBeNull();
    const second = await chat(t.url, key.secret);
    expect(second.status).toBe(200);
    expect(second.headers.get("x-ratelimit-remaining-requests")).toBe("0");

    const third = await chat(t.url, key.secret);
    expectRateLimited(third, "requests", 2);
    // One request comes back every 30 s.
    const wait = expectRetryAfter(third, 30_000);
    expect(wait).toBeGreaterThan(25_000);

    const err = await sdkClient(t.url, key.secret)
      .chat.completions.create({ model: TINY_MODEL, messages: [{ role: "user", content: "Hi" }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).status).toBe(429);
    expect((err as RateLimitError).headers.get("retry-after-ms")).toMatch(/^\d+$/);
  });

  it("puts x-ratelimit-* headers on streams too", async () => {
    const key = await newKey({ requests_per_minute: 5, tokens_per_minute: 10_000 });
    const res = await call(t.url, "POST", "/v1/chat/completions", {
      key: key.secret,
      body: chatBody({ max_tokens: 3, stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(res.text).toContain("data: [DONE]");
    expect(res.headers.get("x-ratelimit-limit-requests")).toBe("5");
    expect(res.headers.get("x-ratelimit-remaining-requests")).toBe("4");
    expect(res.headers.get("x-ratelimit-limit-tokens")).toBe("10000");
    // The reservation: the prompt and the completion bound.
    expect(res.headers.get("x-ratelimit-remaining-tokens")).toBe(String(10_000 - promptTokens - 3));
    expect(res.headers.get("x-ratelimit-reset-tokens")).toMatch(DURATION);
  });

  it("refuses a request whose max_tokens cannot fit the token limit, and passes a small one", async () => {
    const key = await newKey({ tokens_per_minute: 100, requests_per_minute: 2 });
    const big = await chat(t.url, key.secret, { max_tokens: 200 });
    expectRateLimited(big, "tokens", 100);
    expect(big.body.error.message).toMatch(/max_tokens/);
    // No amount of waiting helps: no retry-after, and the SDK is told not to retry.
    expect(big.headers.get("retry-after")).toBeNull();
    expect(big.headers.get("retry-after-ms")).toBeNull();
    expect(big.headers.get("x-should-retry")).toBe("false");

    // The refused request took nothing: both requests of the minute are still there.
    const small = await chat(t.url, key.secret, { max_tokens: 5 });
    expect(small.status, small.text).toBe(200);
    const used = totalTokens(small);
    expect(small.headers.get("x-ratelimit-limit-tokens")).toBe("100");
    expect(small.headers.get("x-ratelimit-remaining-tokens")).toBe(String(100 - promptTokens - 5));

    // A request that fits the limit but not what is left: 429 with a finite wait.
    const left = 100 - used;
    const tooMuch = await chat(t.url, key.secret, { max_tokens: left - promptTokens + 10 });
    expectRateLimited(tooMuch, "tokens", 100);
    expectRetryAfter(tooMuch, 60_000);
    expect(tooMuch.headers.get("x-should-retry")).toBeNull();
    expect((await chat(t.url, key.secret, { max_tokens: 1 })).status).toBe(200);
  });

  it("refunds reserved tokens a request did not use", async () => {
    // 2000 tokens a minute refill ~33 a second: without the refund the second reservation would
    // wait ~25 s.
    const key = await newKey({ tokens_per_minute: 2_000 });
    const reserve = 1_500;
    for (let i = 0; i < 3; i++) {
      // Each stream reserves the prompt and 1500 tokens; the client goes away after the first
      // tokens, so only what was generated is charged and the rest is refunded.
      const stream = await waitFor(
        "the unused tokens to be refunded",
        async () => {
          const s = await openStream(t.url, key.secret, reserve);
          if (s.status === 200) return s;
          expect(s.status).toBe(429);
          return undefined;
        },
        3_000,
        50,
      );
      if (i === 0) {
        expect(stream.headers.get("x-ratelimit-remaining-tokens")).toBe(
          String(2_000 - promptTokens - reserve),
        );
      }
      stream.abort();
      await stream.finished;
    }
  });

  it("lets one of two concurrent streams through when max_concurrent is 1", async () => {
    const key = await newKey({ max_concurrent: 1 });
    const streams = await Promise.all([
      openStream(t.url, key.secret, 1_500),
      openStream(t.url, key.secret, 1_500),
    ]);
    const statuses = streams.map((s) => s.status).sort();
    expect(statuses).toEqual([200, 429]);
    const refused = streams.find((s) => s.status === 429);
    const running = streams.find((s) => s.status === 200);
    const body = JSON.parse(await (refused?.finished ?? Promise.resolve("{}")));
    expect(body.error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    expect(refused?.headers.get("retry-after")).toBe("1");
    expect(refused?.headers.get("retry-after-ms")).toBe("1000");

    // While the stream runs, a non-streaming request is refused too.
    expect((await chat(t.url, key.secret)).status).toBe(429);
    // The client going away frees the place.
    running?.abort();
    await running?.finished;
    await waitFor(
      "the concurrency place to be freed",
      async () => (await chat(t.url, key.secret)).status === 200,
      3_000,
      50,
    );
  });

  it("keeps max_concurrent when both streams send the same x-request-id", async () => {
    const key = await newKey({ max_concurrent: 1 });
    const same = { "x-request-id": "same-id-twice" };
    const streams = await Promise.all([
      openStream(t.url, key.secret, 1_500, same),
      openStream(t.url, key.secret, 1_500, same),
    ]);
    expect(streams.map((s) => s.status).sort()).toEqual([200, 429]);
    for (const s of streams) {
      // The id is still the request's own id in the response; it just is not the lease.
      expect(s.headers.get("x-request-id")).toBe("same-id-twice");
      s.abort();
      await s.finished;
    }
  });

  it("sends x-ratelimit headers for project limits too, reporting the tighter of key and project", async () => {
    const { project, key: unlimited } = await t.admin.projectWithKey({
      requests_per_minute: 5,
      tokens_per_minute: 100_000,
    });
    const first = await chat(t.url, unlimited.secret);
    expect(first.status).toBe(200);
    expect(first.headers.get("x-ratelimit-limit-requests")).toBe("5");
    expect(first.headers.get("x-ratelimit-remaining-requests")).toBe("4");
    expect(first.headers.get("x-ratelimit-limit-tokens")).toBe("100000");

    // A key allowing more than its project: the project's count is the one that binds.
    const loose = await t.admin.createKey(project.id, { limits: { requests_per_minute: 50 } });
    const second = await chat(t.url, loose.secret);
    expect(second.headers.get("x-ratelimit-limit-requests")).toBe("5");
    expect(second.headers.get("x-ratelimit-remaining-requests")).toBe("3");
    // A key tighter than its project: the key's.
    const tight = await t.admin.createKey(project.id, { limits: { requests_per_minute: 1 } });
    const third = await chat(t.url, tight.secret);
    expect(third.headers.get("x-ratelimit-limit-requests")).toBe("1");
    expect(third.headers.get("x-ratelimit-remaining-requests")).toBe("0");
  });

  it("sends no x-ratelimit headers when no per-minute limit applies", async () => {
    const key = await newKey({ max_concurrent: 5 });
    const res = await chat(t.url, key.secret);
    expect(res.status).toBe(200);
    expect([...res.headers.keys()].filter((name) => name.startsWith("x-ratelimit-"))).toEqual([]);
  });

  it("applies project limits across the project's keys", async () => {
    const { project, key: first } = await t.admin.projectWithKey({ requests_per_minute: 2 });
    const second = await t.admin.createKey(project.id);
    const a = await chat(t.url, first.secret);
    expect(a.status).toBe(200);
    const b = await chat(t.url, second.secret);
    expect(b.status).toBe(200);
    expect(b.headers.get("x-ratelimit-limit-requests")).toBe("2");
    expect(b.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    for (const key of [first, second]) {
      const res = await chat(t.url, key.secret);
      expectRateLimited(res, "requests", 2);
      expectRetryAfter(res, 30_000);
    }
    // Another project is not affected.
    const other = await newKey({});
    expect((await chat(t.url, other.secret)).status).toBe(200);
  });

  it("refuses with insufficient_quota once a project's monthly token budget is spent", async () => {
    const { project, key } = await t.admin.projectWithKey({ monthly_token_budget: 50 });
    const sibling = await t.admin.createKey(project.id);
    let spent = 0;
    let refused: HttpResult | undefined;
    for (let i = 0; i < 5 && !refused; i++) {
      const res = await chat(t.url, i % 2 ? sibling.secret : key.secret, { max_tokens: 5 });
      if (res.status === 200) spent += totalTokens(res);
      else refused = res;
    }
    expect(refused, "a request should have been refused").toBeDefined();
    expectError(refused as HttpResult, 429, { code: "insufficient_quota", type: "insufficient_quota" });
    expect((refused as HttpResult).headers.get("x-should-retry")).toBe("false");
    // Requests pass until the spending reaches the budget (the last one may go past it).
    expect(spent).toBeGreaterThanOrEqual(50);
    expect(spent - (promptTokens + 5)).toBeLessThan(50);
    // Both keys of the project are refused; the SDK does not retry a spent budget.
    let attempts = 0;
    const counting: typeof fetch = (input, init) => {
      attempts++;
      return fetch(input, init);
    };
    for (const secret of [key.secret, sibling.secret]) {
      attempts = 0;
      const err = await sdkClient(t.url, secret, { maxRetries: 2, fetch: counting })
        .chat.completions.create({ model: TINY_MODEL, messages: [{ role: "user", content: "Hi" }] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RateLimitError);
      expect((err as RateLimitError).code).toBe("insufficient_quota");
      expect(attempts).toBe(1);
    }
  });

  it("applies a key's monthly token budget to that key only", async () => {
    const { project, key } = await t.admin.projectWithKey(undefined, { limits: { monthly_token_budget: 1 } });
    const other = await t.admin.createKey(project.id);
    expect((await chat(t.url, key.secret)).status).toBe(200);
    const refused = await chat(t.url, key.secret);
    expectError(refused, 429, { code: "insufficient_quota", type: "insufficient_quota" });
    expect(refused.body.error.message).toMatch(/API key/);
    expect((await chat(t.url, other.secret)).status).toBe(200);
  });

  it("refuses with insufficient_quota once a project's monthly cost budget is spent", async () => {
    const { project, key } = await t.admin.projectWithKey({ monthly_cost_budget_usd: 40 });
    let spentUsd = 0;
    let refused: HttpResult | undefined;
    for (let i = 0; i < 5 && !refused; i++) {
      const res = await chat(t.url, key.secret, { max_tokens: 5 });
      if (res.status === 200) {
        const usage = res.body.usage;
        spentUsd += usage.prompt_tokens * 1 + usage.completion_tokens * 2;
      } else refused = res;
    }
    expect(refused, "a request should have been refused").toBeDefined();
    expectError(refused as HttpResult, 429, { code: "insufficient_quota", type: "insufficient_quota" });
    expect(spentUsd).toBeGreaterThanOrEqual(40);
    expect(spentUsd - (promptTokens + 10)).toBeLessThan(40);
    // The usage report prices the same requests the same way.
    const rows = await waitFor(
      "the usage to be recorded",
      async () => {
        const data = await t.admin.usage(`project_id=${project.id}`);
        return data[0]?.cost_usd === spentUsd ? data : undefined;
      },
      5_000,
      100,
    );
    expect(rows[0].cost_usd).toBe(spentUsd);
  });
});

describe("the SDK's own retries", () => {
  let t: AccessServer;
  let key: CreatedKey;

  beforeAll(async () => {
    t = await startAccessServer();
    // 60 a minute: one request comes back every second, so a 429's retry-after is ≤ 1 s.
    key = (await t.admin.projectWithKey(undefined, { limits: { requests_per_minute: 60 } })).key;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("retries a 429 after retry-after-ms and succeeds on its own", async () => {
    const statuses: number[] = [];
    const counting: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      statuses.push(res.status);
      return res;
    };
    const client = sdkClient(t.url, key.secret, { maxRetries: 2, fetch: counting });
    // Spend the burst (60) until a call of the SDK meets a 429; that call must still succeed.
    let seen: number[] = [];
    for (let i = 0; i < 100; i++) {
      statuses.length = 0;
      const { data, response } = await client.chat.completions
        .create({ model: TINY_MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 1 })
        .withResponse();
      expect(response.status).toBe(200);
      expect(data.choices).toHaveLength(1);
      if (statuses.includes(429)) {
        seen = [...statuses];
        break;
      }
    }
    expect(seen[0]).toBe(429);
    expect(seen.at(-1)).toBe(200);
    expect(seen.length).toBeLessThanOrEqual(3);
  });
});

describe("a request the model's full queue turns away", () => {
  let t: AccessServer;

  beforeAll(async () => {
    // One slot and no queue: a second request while one runs is refused with 429 at once.
    t = await startAccessServer({ model: { parallel: 1, max_queue: 0, context_size: 2048 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("is recorded with no tokens used (its prompt was never processed)", async () => {
    const { project, key } = await t.admin.projectWithKey(undefined, {
      limits: { tokens_per_minute: 3_000 },
    });
    const running = await openStream(t.url, key.secret, 1_800);
    expect(running.status).toBe(200);
    const remainingWhileRunning = Number(running.headers.get("x-ratelimit-remaining-tokens"));
    const refused = await chat(t.url, key.secret, { max_tokens: 1_000 });
    expectError(refused, 429, { code: "server_overloaded" });
    running.abort();
    await running.finished;

    const prompt = 3_000 - 1_800 - remainingWhileRunning;
    const rows = await waitFor(
      "the usage to be recorded",
      async () => {
        const data = await t.admin.usage(`project_id=${project.id}`);
        return data[0]?.requests === 2 ? data : undefined;
      },
      5_000,
      100,
    );
    // Only the stream's prompt was processed; the refused request used nothing.
    expect(prompt).toBeGreaterThan(0);
    expect(rows[0].prompt_tokens).toBe(prompt);
  });
});
