import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chat, startAccessServer } from "../helpers/access.js";
import {
  chromiumForTests,
  consolePage,
  expectNoProblems,
  screenshot,
  serverInChromium,
} from "../helpers/browser.js";

/** Every page on a phone in dark mode, and the console from the keyboard alone. */

const executable = chromiumForTests();

/** What each page shows once its data is in. */
const PAGES: { path: string; loaded: string }[] = [
  { path: "playground", loaded: "select[name=model] option" },
  { path: "models", loaded: '[data-testid="engine-choice"]' },
  { path: "keys", loaded: "tr[data-project]" },
  { path: "usage", loaded: '[data-testid="chart-requests"] canvas' },
];

const overflow = (page: Page) =>
  page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");

describe.skipIf(!executable)("the console's layout and keyboard use, in Chromium", () => {
  const suite = serverInChromium(executable, () => startAccessServer());

  it("fits every page on a phone screen in dark mode, with nothing wider than the screen", async () => {
    const { page, problems } = await consolePage(suite.browser, {
      colorScheme: "dark",
      viewport: { width: 390, height: 844 },
    });
    // Some traffic, so the usage page has a chart and a table to fit.
    const { key } = await suite.server.admin.projectWithKey();
    expect((await chat(suite.server.url, key.secret, { max_tokens: 3 })).status).toBe(200);
    await expect
      .poll(async () => (await suite.server.admin.usage("group_by=model")).length)
      .toBeGreaterThan(0);
    await page.goto(`${suite.server.url}/console/`);
    await page.getByLabel("API key").fill(suite.server.adminKey ?? "");
    await page.getByRole("button", { name: "Use key" }).click();
    for (const { path, loaded } of PAGES) {
      await page.goto(`${suite.server.url}/console/#/${path}`);
      await expect.poll(() => page.locator(loaded).count(), { timeout: 15_000 }).toBeGreaterThan(0);
      expect(await overflow(page), path).toBeLessThanOrEqual(0);
      await screenshot(page, `${path}-phone-dark`);
    }
    expectNoProblems(problems);
    await page.context().close();
  });

  it("is usable from the keyboard: skip link, page links, and focus that shows", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/`);
    await page.keyboard.press("Tab");
    expect(await page.evaluate<string>("document.activeElement.textContent")).toBe("Skip to content");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    expect(await page.evaluate<string>("document.activeElement.textContent")).toBe("Models");
    // The focused link is outlined (the focus ring is not left to chance).
    const outline = await page.evaluate<string>("getComputedStyle(document.activeElement).outlineStyle");
    expect(outline).toBe("solid");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.url()).toMatch(/#\/models$/);
    await expect.poll(() => page.locator("h1").textContent()).toBe("Models and engines");
    expectNoProblems(problems);
    await page.context().close();
  });
});
