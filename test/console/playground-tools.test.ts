import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { call, type WireJson } from "../helpers/access.js";
import {
  chromiumForTests,
  consolePage,
  expectNoProblems,
  screenshot,
  serverInChromium,
} from "../helpers/browser.js";
import { startTestServer, TINY_MODEL } from "../helpers/test-server.js";

/**
 * The playground's tools and structured-output editors. The tiny model has random weights: every
 * structure asserted here (a call's name and arguments, an answer valid against its schema) is
 * held by the server's grammar, so it holds on gibberish.
 */

const WEATHER_PARAMETERS = JSON.stringify(
  {
    type: "object",
    properties: { city: { type: "string", enum: ["Oslo", "Lima"] } },
    required: ["city"],
    additionalProperties: false,
  },
  null,
  2,
);

const VERDICT_SCHEMA = JSON.stringify({
  type: "object",
  properties: { verdict: { type: "string", enum: ["yes", "no"] } },
  required: ["verdict"],
  additionalProperties: false,
});

const executable = chromiumForTests();

/** The chat requests the page sent, as parsed bodies. */
function sentRequests(page: Page): WireJson[] {
  const bodies: WireJson[] = [];
  page.on("request", (request) => {
    if (request.url().endsWith("/v1/chat/completions")) bodies.push(JSON.parse(request.postData() ?? "null"));
  });
  return bodies;
}

async function openPlayground(page: Page, url: string): Promise<void> {
  await page.goto(`${url}/console/#/playground`);
  await expect.poll(() => page.locator("select[name=model]").inputValue()).toBe(TINY_MODEL);
}

async function addWeatherTool(page: Page): Promise<void> {
  await page.getByTestId("tools-editor").locator("summary").click();
  await page.getByRole("button", { name: "Add tool" }).click();
  await page.locator("#tool-0-name").fill("get_weather");
  await page.getByTestId("tool").getByLabel("Description").fill("The forecast for a city");
  await page.locator("#tool-0-parameters").fill(WEATHER_PARAMETERS);
  await page.getByTestId("tool").getByLabel("strict").check();
}

const activeId = (page: Page) => page.evaluate<string>("document.activeElement && document.activeElement.id");

describe.skipIf(!executable)("the console playground's tools and structured outputs, in Chromium", () => {
  const suite = serverInChromium(executable, async () => {
    // Tool definitions make long prompts on the tiny model's byte-level tokenizer.
    return startTestServer({ model: { context_size: 2048 } });
  });

  it("names bad JSON and bad names next to their fields, keyboard first, and sends nothing broken", async () => {
    const { page, problems } = await consolePage(suite.browser);
    const sent = sentRequests(page);
    await openPlayground(page, suite.server.url);
    await page.getByLabel("Message 1", { exact: true }).fill("Weather?");

    // The editors open and fill from the keyboard alone.
    await page.getByTestId("tools-editor").locator("summary").focus();
    await page.keyboard.press("Enter");
    await page.getByRole("button", { name: "Add tool" }).focus();
    await page.keyboard.press("Enter");
    await page.locator("#tool-0-name").focus();
    await page.keyboard.type("get weather");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    expect(await activeId(page)).toBe("tool-0-parameters");
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.type('{\n  "type": "object",\n  "properties": {,}\n}');

    const nameError = page.getByTestId("tool-0-name-error");
    const parametersError = page.getByTestId("tool-0-parameters-error");
    await expect.poll(() => nameError.textContent()).toContain("letters, digits, underscores or hyphens");
    await expect.poll(() => parametersError.textContent()).toMatch(/^Not valid JSON: .*line 3,? column 18/);
    expect(await page.locator("#tool-0-parameters").getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#tool-0-parameters").getAttribute("aria-describedby")).toBe(
      "tool-0-parameters-error",
    );

    // A schema that is JSON but not an object is refused too.
    await page.getByTestId("format-editor").locator("summary").click();
    await page.locator("select[name=response_format]").selectOption("json_schema");
    await page.locator("#format-schema").fill("[1, 2]");
    await expect
      .poll(() => page.getByTestId("format-schema-error").textContent())
      .toBe("A JSON Schema is a JSON object ({ … }).");

    // Send: nothing goes out, the page says why, and the first field to fix has the focus.
    await page.getByRole("button", { name: "Send" }).click();
    await expect
      .poll(() => page.getByTestId("send-error").textContent())
      .toBe("Not sent: 4 fields need fixing.");
    expect(await activeId(page)).toBe("tool-0-name");
    // The name left empty is named once a send was tried.
    expect(await page.getByTestId("format-name-error").textContent()).toBe("Give the schema a name.");
    await page.getByRole("button", { name: "As curl" }).click();
    expect(await page.getByTestId("code-unavailable").textContent()).toContain("fields to fix first");
    await screenshot(page, "playground-invalid-tools");
    expect(sent).toEqual([]);

    // Fixed, the same form sends.
    await page.locator("#tool-0-name").fill("get_weather");
    await page.locator("#tool-0-parameters").fill(WEATHER_PARAMETERS);
    await page.locator("select[name=response_format]").selectOption("text");
    await expect.poll(() => page.getByTestId("tool-0-name-error").count()).toBe(0);
    await page.locator("input[name=max_tokens]").fill("4");
    await page.getByRole("button", { name: "Send" }).click();
    await expect.poll(() => sent.length).toBe(1);
    expect(sent[0].tools[0].function).toMatchObject({ name: "get_weather", parameters: { type: "object" } });
    expectNoProblems(problems);
    await page.context().close();
  });

  it("streams a tool call (name, then its arguments) and continues with the tool's result", async () => {
    const { page, problems } = await consolePage(suite.browser);
    const sent = sentRequests(page);
    await openPlayground(page, suite.server.url);
    await page.getByLabel("Message 1", { exact: true }).fill("What is the weather in Oslo?");
    // The call's wrapping and JSON are many tokens on a byte-level tokenizer.
    await page.locator("input[name=max_tokens]").fill("600");
    await page.locator("input[name=seed]").fill("3");
    await addWeatherTool(page);
    await page.locator("select[name=tool_choice]").selectOption("function:get_weather");
    // One call, then the answer ends (random weights would otherwise call on until the limit).
    await page.locator("select[name=parallel_tool_calls]").selectOption("false");

    // Every text the arguments box shows on the way, to see that it only ever grows.
    const seen: string[] = [];
    await page.exposeFunction("recordArguments", (text: string) => seen.push(text));
    await page.evaluate(`new MutationObserver(() => {
      const box = document.querySelector('[data-testid="tool-call-arguments"]');
      if (box) recordArguments(box.textContent);
    }).observe(document.body, { subtree: true, childList: true, characterData: true })`);

    await page.getByRole("button", { name: "Send" }).click();
    await expect
      .poll(() => page.getByTestId("stat-finish").textContent(), { timeout: 30_000 })
      .toBe("tool_calls");
    expect(await page.getByTestId("tool-call-name").textContent()).toBe("get_weather");
    const final = (await page.getByTestId("tool-call-arguments").textContent()) ?? "";
    expect(["Oslo", "Lima"]).toContain(JSON.parse(final).city);
    expect(seen.length).toBeGreaterThan(0);
    for (const text of seen)
      expect(final.startsWith(text), `${JSON.stringify(text)} then ${final}`).toBe(true);
    expect(Number(await page.getByTestId("stat-completion-tokens").textContent())).toBeGreaterThan(0);
    await screenshot(page, "playground-tool-call");

    // The result is asked for before anything is sent.
    await page.getByRole("button", { name: "Send the results and continue" }).click();
    expect(await activeId(page)).toBe("tool-result-0");
    expect(sent).toHaveLength(1);
    const result = '{"forecast": "sunny", "celsius": 21}';
    await page.getByLabel("Result of get_weather").fill(result);
    await page.getByRole("button", { name: "Send the results and continue" }).click();
    await expect.poll(() => sent.length).toBe(2);
    expect(await page.locator(".kept-call").textContent()).toContain(`get_weather(${final})`);
    const [assistant, tool] = (sent[1].messages as WireJson[]).slice(-2);
    expect(assistant).toMatchObject({ role: "assistant", content: null, tool_calls: [{ type: "function" }] });
    expect(assistant.tool_calls[0].function).toEqual({ name: "get_weather", arguments: final });
    expect(tool).toEqual({ role: "tool", tool_call_id: assistant.tool_calls[0].id, content: result });

    // The function is still named, so the model calls it again: a new call, its result field empty.
    await expect
      .poll(() => page.getByTestId("stat-finish").textContent(), { timeout: 30_000 })
      .toBe("tool_calls");
    expect(await page.getByLabel("Result of get_weather").inputValue()).toBe("");
    await page.getByLabel("Result of get_weather").fill(result);
    // Told to call nothing now, it answers in text.
    await page.locator("select[name=tool_choice]").selectOption("none");
    await page.getByRole("button", { name: "Send the results and continue" }).click();
    await expect.poll(() => sent.length).toBe(3);
    expect(sent[2]).toMatchObject({ tool_choice: "none", parallel_tool_calls: false });
    expect((sent[2].messages as WireJson[]).map((m) => m.role)).toEqual([
      "user",
      "assistant",
      "tool",
      "assistant",
      "tool",
    ]);
    await expect
      .poll(() => page.getByTestId("stat-finish").textContent(), { timeout: 30_000 })
      .toMatch(/^(stop|length)$/);
    expect(await page.getByTestId("send-error").count()).toBe(0);
    await screenshot(page, "playground-tool-result");
    expectNoProblems(problems);
    await page.context().close();
  });

  it("answers under a strict JSON schema, and the code it shows carries tools and response_format", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await openPlayground(page, suite.server.url);
    await page.getByLabel("Message 1", { exact: true }).fill("Is it sunny? Answer in JSON.");
    await page.locator("input[name=max_tokens]").fill("48");
    await page.locator("input[name=seed]").fill("5");
    await page.getByTestId("format-editor").locator("summary").click();
    await page.locator("select[name=response_format]").selectOption("json_schema");
    await page.locator("#format-name").fill("verdict");
    await page.locator("#format-schema").fill(VERDICT_SCHEMA);
    await page.getByRole("button", { name: "Send" }).click();
    await expect.poll(() => page.getByTestId("stat-finish").textContent(), { timeout: 30_000 }).toBe("stop");
    const answer = JSON.parse((await page.getByTestId("reply").textContent()) ?? "");
    expect(Object.keys(answer)).toEqual(["verdict"]);
    expect(["yes", "no"]).toContain(answer.verdict);
    await screenshot(page, "playground-json-schema");

    await addWeatherTool(page);
    await page.getByRole("button", { name: "As curl" }).click();
    const curl = (await page.getByTestId("code").textContent()) ?? "";
    const quoted = curl.slice(curl.indexOf("-d '") + 4, curl.lastIndexOf("'"));
    const body = JSON.parse(quoted.replaceAll(`'\\''`, "'"));
    expect(body.response_format).toEqual({
      type: "json_schema",
      json_schema: { name: "verdict", schema: JSON.parse(VERDICT_SCHEMA), strict: true },
    });
    expect(body.tools).toEqual([
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "The forecast for a city",
          parameters: JSON.parse(WEATHER_PARAMETERS),
          strict: true,
        },
      },
    ]);
    // The request as shown is one the server takes.
    const res = await call(suite.server.url, "POST", "/v1/chat/completions", { body });
    expect(res.status, res.text).toBe(200);

    await page.getByRole("button", { name: "As OpenAI SDK" }).click();
    const sdk = (await page.getByTestId("code").textContent()) ?? "";
    expect(sdk).toContain('"response_format": {');
    expect(sdk).toContain('"tools": [');
    expect(sdk).toContain("delta?.tool_calls");
    expectNoProblems(problems);
    await page.context().close();
  });

  it("shows a server's refusal of a schema next to the schema field", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await openPlayground(page, suite.server.url);
    await page.getByLabel("Message 1", { exact: true }).fill("Hi");
    await page.getByTestId("format-editor").locator("summary").click();
    await page.locator("select[name=response_format]").selectOption("json_schema");
    await page.locator("#format-name").fill("odd");
    // Valid JSON, but a keyword no grammar can hold: the server refuses it and names the field.
    await page.locator("#format-schema").fill('{"type": "integer", "multipleOf": 3}');
    await page.getByRole("button", { name: "Send" }).click();
    const message = page.getByTestId("format-schema-error");
    await expect.poll(() => message.textContent(), { timeout: 15_000 }).toContain("multipleOf");
    expect(await page.getByTestId("send-error").textContent()).toContain("multipleOf");
    // An edit makes the server's word stale.
    await page.locator("#format-schema").fill('{"type": "integer"}');
    await expect.poll(() => message.count()).toBe(0);
    expectNoProblems(problems);
    await page.context().close();
  });

  it("fits the editors on a phone screen in dark mode", async () => {
    const { page, problems } = await consolePage(suite.browser, {
      colorScheme: "dark",
      viewport: { width: 390, height: 844 },
    });
    await openPlayground(page, suite.server.url);
    await addWeatherTool(page);
    await page.getByTestId("format-editor").locator("summary").click();
    await page.locator("select[name=response_format]").selectOption("json_schema");
    await page.locator("#format-schema").fill("{ nope");
    await expect.poll(() => page.getByTestId("format-schema-error").count()).toBe(1);
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    // The dark palette's error colour, readable on the dark background.
    const color = await page.evaluate<string>(
      "getComputedStyle(document.querySelector('[data-testid=\"format-schema-error\"]')).color",
    );
    expect(color).toBe("rgb(255, 138, 128)");
    await screenshot(page, "playground-editors-phone-dark");
    expectNoProblems(problems);
    await page.context().close();
  });
});
