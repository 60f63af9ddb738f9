import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chat } from "../helpers/access.js";
import {
  chromiumForTests,
  consolePage,
  expectNoProblems,
  launchChromium,
  requireBuiltConsole,
  screenshot,
} from "../helpers/browser.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

const executable = chromiumForTests();

describe.skipIf(!executable)("the console's models page, in Chromium", () => {
  let t: TestServer;
  let browser: Browser;
  beforeAll(async () => {
    requireBuiltConsole();
    // The runner is an engine process with a pid, so the page can show it die and come back.
    t = await startTestServer({
      model: { engine: "runner" },
      config: { engines: { restart_backoff_ms: 100 } },
    });
    browser = await launchChromium(executable ?? "");
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it("shows each model's engine, state, pid, slots and queue, and an engine restart after its process is killed", async () => {
    const { page, problems } = await consolePage(browser);
    await page.goto(`${t.url}/console/#/models`);
    const row = page.locator(`tr[data-model="${TINY_MODEL}"]`);
    const cell = (name: string) => row.locator(`td[data-col="${name}"]`).textContent();
    await expect.poll(() => cell("engine"), { timeout: 15_000 }).toBe("runner");
    await expect.poll(() => cell("state"), { timeout: 15_000 }).toBe("ready");
    expect(await cell("slots")).toBe("0 / 2");
    expect(await cell("queue")).toBe("0");
    expect(await cell("restarts")).toBe("0");
    const pid = Number(await cell("pid"));
    expect(pid).toBeGreaterThan(0);

    // Some traffic, so the next refresh shows a decode rate.
    const res = await chat(t.url, undefined, { max_tokens: 8 });
    expect(res.status, res.text).toBe(200);
    await expect.poll(async () => Number(await cell("tps")), { timeout: 10_000 }).toBeGreaterThan(0);

    process.kill(pid, "SIGKILL");
    await expect.poll(() => cell("restarts"), { timeout: 30_000 }).toBe("1");
    await expect.poll(() => cell("state"), { timeout: 30_000 }).toBe("ready");
    expect(Number(await cell("pid"))).not.toBe(pid);
    await screenshot(page, "models");
    expectNoProblems(problems);
    await page.context().close();
  });
});
