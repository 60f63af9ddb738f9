import { describe, expect, it } from "vitest";
import { call, startAccessServer } from "../helpers/access.js";
import {
  chromiumForTests,
  consolePage,
  expectNoProblems,
  screenshot,
  serverInChromium,
} from "../helpers/browser.js";
import { startTestServer, TINY_MODEL } from "../helpers/test-server.js";

const executable = chromiumForTests();

describe.skipIf(!executable)("the console's keys and projects page, in Chromium", () => {
  const suite = serverInChromium(executable, () => startAccessServer());

  it("serves the console without a key while the API wants one", async () => {
    expect((await call(suite.server.url, "GET", "/console/")).status).toBe(200);
    expect((await call(suite.server.url, "GET", "/v1/models")).status).toBe(401);
  });

  it("creates a project and a key whose secret is shown once and then works against /v1/models", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/#/keys`);
    await page.getByLabel("API key").fill(suite.server.adminKey ?? "");
    await page.getByRole("button", { name: "Use key" }).click();

    await page.locator("input[name=project-name]").fill("console-project");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.locator("input[name=key-name]").fill("console-key");
    await page.locator("input[name=key-rpm]").fill("100");
    await page.getByRole("button", { name: "Create key" }).click();

    const secretBox = page.getByTestId("new-secret");
    await expect.poll(() => secretBox.textContent()).toMatch(/^sk-/);
    const secret = (await secretBox.textContent()) ?? "";
    await expect
      .poll(() => page.locator('tr[data-key="console-key"] td[data-col="status"]').textContent())
      .toBe("active");
    await screenshot(page, "keys");

    const models = await call(suite.server.url, "GET", "/v1/models", { key: secret });
    expect(models.status, models.text).toBe(200);

    // The admin key stays in this tab's sessionStorage, never in the URL or a cookie.
    expect(page.url()).not.toContain(suite.server.adminKey ?? "");
    expect(await page.evaluate<string>("document.cookie")).toBe("");
    expect(await page.evaluate<string | null>("sessionStorage.getItem('switchboard.key')")).toBe(
      suite.server.adminKey,
    );

    // Shown once: after a reload the key is listed by its hint only.
    await page.reload();
    await page
      .getByRole("row", { name: /console-project/ })
      .getByRole("button", { name: "Keys" })
      .click();
    await expect.poll(() => page.locator('tr[data-key="console-key"]').count()).toBe(1);
    expect(await page.content()).not.toContain(secret);

    page.on("dialog", (dialog) => void dialog.accept());
    await page.locator('tr[data-key="console-key"]').getByRole("button", { name: "Revoke" }).click();
    await expect
      .poll(() => page.locator('tr[data-key="console-key"] td[data-col="status"]').textContent())
      .toBe("revoked");
    await expect
      .poll(async () => (await call(suite.server.url, "GET", "/v1/models", { key: secret })).status, {
        timeout: 10_000,
      })
      .toBe(401);
    expectNoProblems(problems);
    await page.context().close();
  });
});

describe.skipIf(!executable)("the console's projects and allowed models, in Chromium", () => {
  const suite = serverInChromium(executable, () =>
    startAccessServer({ extraModels: [{ id: "other-model" }] }),
  );

  it("creates a key for one model only, and archiving its project stops the key", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/#/keys`);
    await page.getByLabel("API key").fill(suite.server.adminKey ?? "");
    await page.getByRole("button", { name: "Use key" }).click();
    await page.locator("input[name=project-name]").fill("archived-later");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.locator("input[name=key-name]").fill("one-model");
    await page.getByRole("checkbox", { name: TINY_MODEL, exact: true }).check();
    await page.getByRole("button", { name: "Create key" }).click();
    const secretBox = page.getByTestId("new-secret");
    await expect.poll(() => secretBox.textContent()).toMatch(/^sk-/);
    const secret = (await secretBox.textContent()) ?? "";
    expect(await page.locator('tr[data-key="one-model"] td[data-col="models"]').textContent()).toBe(
      TINY_MODEL,
    );

    const allowed = await call(suite.server.url, "POST", "/v1/chat/completions", {
      key: secret,
      body: { model: TINY_MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 1 },
    });
    expect(allowed.status, allowed.text).toBe(200);
    const other = await call(suite.server.url, "POST", "/v1/chat/completions", {
      key: secret,
      body: { model: "other-model", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 },
    });
    // Models a key may not use do not exist for it.
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe("model_not_found");

    page.on("dialog", (dialog) => void dialog.accept());
    const project = page.locator('tr[data-project="archived-later"]');
    await project.getByRole("button", { name: "Archive" }).click();
    // Archived projects leave the list unless asked for.
    await expect.poll(() => project.count()).toBe(0);
    await page.getByLabel("Show archived").check();
    await expect.poll(() => project.locator('td[data-col="status"]').textContent()).toBe("archived");
    await expect
      .poll(async () => (await call(suite.server.url, "GET", "/v1/models", { key: secret })).status, {
        timeout: 10_000,
      })
      .toBe(401);
    await screenshot(page, "keys-archived-project");
    expectNoProblems(problems);
    await page.context().close();
  });
});

describe.skipIf(!executable)("the console's admin pages without an admin key, in Chromium", () => {
  const suite = serverInChromium(executable, () => startTestServer());

  it("say how to create one (auth off on loopback)", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/#/keys`);
    const help = page.getByTestId("admin-help");
    await expect.poll(() => help.textContent()).toContain("switchboard keys create --admin");
    await screenshot(page, "keys-without-admin-key");
    expectNoProblems(problems);
    await page.context().close();
  });
});
