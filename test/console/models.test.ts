import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AdminClient, chat, newAdminKey } from "../helpers/access.js";
import {
  chromiumForTests,
  consolePage,
  expectNoProblems,
  screenshot,
  serverInChromium,
} from "../helpers/browser.js";
import { fakeLlamaServerBuild } from "../helpers/fake-llama-server.js";
import { startTestServer, TINY_MODEL } from "../helpers/test-server.js";

const executable = chromiumForTests();

describe.skipIf(!executable)("the console's models page, in Chromium", () => {
  const suite = serverInChromium(executable, async () => {
    // The runner is an engine process with a pid, so the page can show it die and come back.
    return startTestServer({
      model: { engine: "runner" },
      config: { engines: { restart_backoff_ms: 100 } },
    });
  });

  it("shows each model's engine, state, pid, slots and queue, and an engine restart after its process is killed", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/#/models`);
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
    const res = await chat(suite.server.url, undefined, { max_tokens: 8 });
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

describe.skipIf(!executable)("the console's models page says why each engine was chosen, in Chromium", () => {
  let binary: string;
  const adminKey = newAdminKey();
  const suite = serverInChromium(executable, async () => {
    binary = fakeLlamaServerBuild(mkdtempSync(join(tmpdir(), "sb-cache-")));
    return startTestServer({
      config: { admin_key: adminKey, engines: { llama_server: { binary } } },
      model: { engine: "in-process" },
      // Loaded on demand and never asked for: its binary is described, never started.
      extraModels: [{ id: "on-llama-server", engine: "llama-server" }],
    });
  });

  it("with the llama-server build (revision, flags) for any key, and its path for an admin key", async () => {
    const { page, problems } = await consolePage(suite.browser);
    await page.goto(`${suite.server.url}/console/#/models`);
    await page.getByLabel("API key").fill(adminKey);
    await page.getByRole("button", { name: "Use key" }).click();
    const choice = (model: string, field: string) =>
      page
        .locator(`[data-testid="engine-choice"][data-model="${model}"] [data-field="${field}"]`)
        .textContent();
    await expect.poll(() => choice("on-llama-server", "origin"), { timeout: 15_000 }).toBe("config");
    await expect.poll(() => choice("on-llama-server", "path")).toBe(binary);
    expect(await choice("on-llama-server", "revision")).toBe("0123456789ab");
    expect(await choice("on-llama-server", "release")).toBe("b7000");
    expect(await choice("on-llama-server", "flags")).toBe("GGML_NATIVE=ON LLAMA_CURL=OFF");
    expect(await choice("on-llama-server", "reason")).toBe("the config names it");
    expect(await choice(TINY_MODEL, "requested")).toBe("in-process");
    expect(await choice(TINY_MODEL, "detail")).toContain("engine: in-process");
    await screenshot(page, "models-engine-choice");

    // A project's key reads /ready, which leaves the path out.
    const { key } = await new AdminClient(suite.server.url, adminKey).projectWithKey();
    await page.getByLabel("API key").fill(key.secret);
    await page.getByRole("button", { name: "Use key" }).click();
    await expect.poll(() => choice("on-llama-server", "path")).toBe("(shown with an admin key)");
    expect(await choice("on-llama-server", "revision")).toBe("0123456789ab");
    expect(await page.content()).not.toContain(binary);
    expectNoProblems(problems);
    await page.context().close();
  });
});
