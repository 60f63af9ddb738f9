import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/access.js";
import {
  chromiumForTests,
  consolePage,
  expectNoProblems,
  requireBuiltConsole,
  screenshot,
  serverInChromium,
} from "../helpers/browser.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

describe("the web console is served under /console", () => {
  let t: TestServer;
  beforeAll(async () => {
    requireBuiltConsole();
    t = await startTestServer();
  });
  afterAll(() => t?.stop());

  it("with a strict CSP, nosniff and no framing, and a page that is always revalidated", async () => {
    for (const path of ["/console/", "/console"]) {
      const res = await fetch(`${t.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/html/);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("connect-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain("unsafe-inline");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      const html = await res.text();
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(html).not.toMatch(/https?:\/\//);
    }
  });

  it("with hashed assets cached for good", async () => {
    const html = await (await fetch(`${t.url}/console/`)).text();
    const assets = [...html.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) {
      const res = await fetch(`${t.url}${asset}`);
      expect(res.status, asset).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    }
  });

  it("while the API's responses carry none of the console's headers, and unknown files are JSON 404s", async () => {
    const models = await call(t.url, "GET", "/v1/models");
    expect(models.status).toBe(200);
    expect(models.headers.get("content-security-policy")).toBeNull();
    const missing = await call(t.url, "GET", "/console/assets/nope.js");
    expect(missing.status).toBe(404);
    expect(missing.body.error.type).toBeDefined();
  });

  it("and not at all with `console: false`", async () => {
    const off = await startTestServer({ config: { console: false } });
    try {
      const res = await call(off.url, "GET", "/console/");
      expect(res.status).toBe(404);
      expect(res.body.error).toBeDefined();
    } finally {
      await off.stop();
    }
  });
});

const executable = chromiumForTests();

describe.skipIf(!executable)("the console's playground, in Chromium", () => {
  const suite = serverInChromium(executable, () => startTestServer());

  it("streams a reply with its stop reason, usage, time to first token and tokens/s (auth off: no key)", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/`);
    await expect.poll(() => page.locator("select[name=model]").inputValue()).toBe(TINY_MODEL);
    await page.getByLabel("Message 1", { exact: true }).fill("Hello there");
    await page.locator("input[name=max_tokens]").fill("12");
    await page.locator("input[name=seed]").fill("7");
    await page.getByRole("button", { name: "Send" }).click();

    const completion = page.getByTestId("stat-completion-tokens");
    await expect.poll(() => completion.textContent(), { timeout: 30_000 }).toMatch(/^\d+$/);
    expect(Number(await completion.textContent())).toBeGreaterThan(0);
    expect(await page.getByTestId("stat-finish").textContent()).toMatch(/^(stop|length)$/);
    expect(await page.getByTestId("stat-prompt-tokens").textContent()).toMatch(/^\d+$/);
    expect(await page.getByTestId("stat-ttft").textContent()).toMatch(/^\d+ ms$/);
    if (Number(await completion.textContent()) > 1) {
      expect(await page.getByTestId("stat-tps").textContent()).toMatch(/^\d+\.\d$/);
    }
    await screenshot(page, "playground");
    expectNoProblems(problems);
    await page.context().close();
  });

  it("shows the exact request as curl and as OpenAI SDK code, and the curl body works as it is", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/#/playground`);
    await expect.poll(() => page.locator("select[name=model]").inputValue()).toBe(TINY_MODEL);
    await page.getByLabel("Message 1", { exact: true }).fill("It's a test");
    await page.locator("input[name=max_tokens]").fill("3");
    await page.getByRole("button", { name: "As curl" }).click();
    const curl = (await page.getByTestId("code").textContent()) ?? "";
    expect(curl).toContain(`curl '${suite.server.url}/v1/chat/completions'`);
    expect(curl).toContain("Authorization: Bearer $SWITCHBOARD_API_KEY");
    // The shell quoting of the body, undone, is the request the playground sends.
    const quoted = curl.slice(curl.indexOf("-d '") + 4, curl.lastIndexOf("'"));
    const body = JSON.parse(quoted.replaceAll(`'\\''`, "'"));
    expect(body).toMatchObject({ model: TINY_MODEL, max_tokens: 3, stream: true });
    expect(body.messages).toEqual([{ role: "user", content: "It's a test" }]);
    const res = await call(suite.server.url, "POST", "/v1/chat/completions", { body });
    expect(res.status, res.text).toBe(200);
    expect(res.text).toContain('"usage"');

    await page.getByRole("button", { name: "As OpenAI SDK" }).click();
    const sdk = (await page.getByTestId("code").textContent()) ?? "";
    expect(sdk).toContain(`baseURL: "${suite.server.url}/v1"`);
    expect(sdk).toContain("client.chat.completions.create(");
    expect(sdk).toContain("process.env.SWITCHBOARD_API_KEY");
    await screenshot(page, "playground-code");
    expectNoProblems(problems);
    await page.context().close();
  });

  it("shows the reply token by token with its log probabilities when asked", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/#/playground`);
    await expect.poll(() => page.locator("select[name=model]").inputValue()).toBe(TINY_MODEL);
    await page.getByLabel("Message 1", { exact: true }).fill("Hello");
    await page.locator("input[name=max_tokens]").fill("6");
    await page.locator("input[name=top_logprobs]").fill("3");
    await page.getByRole("button", { name: "Send" }).click();
    const tokens = page.getByTestId("logprobs").locator(".token");
    await expect
      .poll(() => page.getByTestId("stat-finish").textContent(), { timeout: 30_000 })
      .toMatch(/^(stop|length)$/);
    const count = await tokens.count();
    expect(count).toBeGreaterThan(0);
    // The tokens spell the reply, and each carries its log probability and alternatives.
    const joined = (await tokens.allTextContents()).join("");
    expect(joined).toBe(await page.getByTestId("reply").textContent());
    expect(Number(await tokens.first().getAttribute("data-logprob"))).toBeLessThanOrEqual(0);
    expect((await tokens.first().getAttribute("title"))?.split("\n").length).toBe(4);
    await screenshot(page, "playground-logprobs");
    expectNoProblems(problems);
    await page.context().close();
  });

  it("fits a phone screen in dark mode", async () => {
    const { page, problems } = await consolePage(suite.browser, {
      colorScheme: "dark",
      viewport: { width: 390, height: 844 },
    });
    await page.goto(`${suite.server.url}/console/`);
    await expect.poll(() => page.locator("select[name=model]").inputValue()).toBe(TINY_MODEL);
    // Page scripts as strings: the tests' tsconfig has no DOM types.
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    const background = await page.evaluate<string>("getComputedStyle(document.body).backgroundColor");
    expect(background).toBe("rgb(20, 23, 27)");
    await screenshot(page, "playground-phone-dark");
    expectNoProblems(problems);
    await page.context().close();
  });
});
