import { describe, expect, it } from "vitest";
import { chat, startAccessServer } from "../helpers/access.js";
import {
  chromiumForTests,
  consolePage,
  expectNoProblems,
  screenshot,
  serverInChromium,
} from "../helpers/browser.js";
import { TINY_MODEL } from "../helpers/test-server.js";

const executable = chromiumForTests();

describe.skipIf(!executable)("the console's usage page, in Chromium", () => {
  const suite = serverInChromium(executable, () => startAccessServer());

  it("charts requests, tokens and cost per day after some traffic, with a table under each chart", async () => {
    const { key } = await suite.server.admin.projectWithKey();
    for (let i = 0; i < 3; i++)
      expect((await chat(suite.server.url, key.secret, { max_tokens: 3 })).status).toBe(200);
    // Usage is written in batches (every second): wait until all three requests are in, not just
    // a first batch that a flush between two requests may have written.
    await expect
      .poll(async () => {
        const rows = (await suite.server.admin.usage("group_by=model")) as { requests: number }[];
        return rows.reduce((sum, row) => sum + row.requests, 0);
      })
      .toBe(3);

    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/#/usage`);
    await page.getByLabel("API key").fill(suite.server.adminKey ?? "");
    await page.getByRole("button", { name: "Use key" }).click();

    for (const measure of ["requests", "total_tokens", "cost_usd"]) {
      await expect.poll(() => page.locator(`[data-testid="chart-${measure}"] canvas`).count()).toBe(1);
    }
    const table = page.getByTestId("table-requests");
    await expect.poll(() => table.locator("thead th").allTextContents()).toEqual(["Day", TINY_MODEL]);
    expect(await table.locator("tbody td").allTextContents()).toEqual(["3"]);

    await page.locator("select[name=group]").selectOption("project");
    await expect.poll(() => table.locator("thead th").allTextContents()).toContain(key.project_id);
    await screenshot(page, "usage");
    expectNoProblems(problems);
    await page.context().close();
  });
});
