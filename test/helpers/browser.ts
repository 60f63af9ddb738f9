import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect } from "vitest";

/** Where the console tests leave their screenshots (gitignored). */
export const ARTIFACTS = join(import.meta.dirname, "../../test-artifacts/console");

/**
 * Debian's Chromium (the `chromium` package; SWITCHBOARD_CHROMIUM names another binary). Without
 * one the browser tests skip, loudly; SWITCHBOARD_REQUIRE_CHROMIUM=1 (CI) makes that a failure.
 * Playwright's own browser download is never used.
 */
export function chromiumForTests(): string | undefined {
  const named = process.env.SWITCHBOARD_CHROMIUM;
  if (named && existsSync(named)) return named;
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      const path = execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim();
      if (path) return path;
    } catch {
      // not on PATH
    }
  }
  const message = "no Chromium found (install Debian's `chromium` package, or set SWITCHBOARD_CHROMIUM).";
  if (process.env.SWITCHBOARD_REQUIRE_CHROMIUM === "1") {
    throw new Error(`Chromium is required (SWITCHBOARD_REQUIRE_CHROMIUM=1) but there is ${message}`);
  }
  console.warn(
    `\n*** SKIPPING WEB CONSOLE BROWSER TESTS: ${message} Set SWITCHBOARD_REQUIRE_CHROMIUM=1 to make this a failure. ***\n`,
  );
  return undefined;
}

/** The built console must exist: the server serves what `npm run build` wrote. */
export function requireBuiltConsole(): void {
  const index = join(import.meta.dirname, "../../build/console/index.html");
  if (!existsSync(index)) throw new Error("The web console is not built: run `npm run build` first.");
}

export function launchChromium(executablePath: string): Promise<Browser> {
  // As root (CI, containers) Chromium refuses to start with its sandbox on.
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  return chromium.launch({ executablePath, headless: true, args: root ? ["--no-sandbox"] : [] });
}

/** A server and Chromium for the tests of one describe block; read them inside the tests. */
export interface ServerInChromium<S> {
  readonly server: S;
  readonly browser: Browser;
}

/**
 * Starts the server `start` gives and Chromium before the tests of the describe block it is
 * called in (the console must be built), and closes both after them.
 */
export function serverInChromium<S extends { stop(): Promise<void> }>(
  executable: string | undefined,
  start: () => Promise<S>,
): ServerInChromium<S> {
  const suite = {} as { server: S; browser: Browser };
  beforeAll(async () => {
    requireBuiltConsole();
    suite.server = await start();
    suite.browser = await launchChromium(executable ?? "");
  });
  afterAll(async () => {
    await suite.browser?.close();
    await suite.server?.stop();
  });
  return suite;
}

/**
 * A page that fails the test on any CSP violation or uncaught script error: the console must run
 * under its own strict policy.
 */
export async function consolePage(
  browser: Browser,
  options: { colorScheme?: "light" | "dark"; viewport?: { width: number; height: number } } = {},
): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({
    colorScheme: options.colorScheme ?? "light",
    viewport: options.viewport ?? { width: 1280, height: 860 },
  });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && /Content.Security.Policy/i.test(message.text())) {
      problems.push(`CSP: ${message.text()}`);
    }
  });
  return { page, problems };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export function expectNoProblems(problems: string[]): void {
  expect(problems).toEqual([]);
}
