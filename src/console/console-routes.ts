import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";

/** Where the console is served; the API's routes never start with it. */
export const CONSOLE_PREFIX = "/console";

/**
 * The console's pages hold no data and call only the API (with the key typed in), so they are
 * public. They are locked down instead: scripts and styles from this origin only, never inline;
 * fetches to this origin only; no framing.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

/** Asset names carry a content hash, so a name never changes its bytes: cache for a year. */
const IMMUTABLE = "public, max-age=31536000, immutable";

/**
 * The built console (`npm run build` writes it into build/console at the package root). Found
 * from here by walking up to the package root, so it is the same from src/ (tests) and build/src/.
 */
export function defaultConsoleRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json"))) {
      const built = join(dir, "build", "console");
      return existsSync(join(built, "index.html")) ? built : undefined;
    }
    dir = dirname(dir);
  }
  return undefined;
}

/**
 * Serves the web console's static files under /console. The security headers are set in this
 * plugin's own scope, so they reach console responses only, never the API's.
 */
export async function consoleRoutes(app: FastifyInstance, opts: { root: string }): Promise<void> {
  app.addHook("onSend", async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    return payload;
  });
  await app.register(fastifyStatic, {
    root: opts.root,
    prefix: `${CONSOLE_PREFIX}/`,
    redirect: false,
    index: false,
    wildcard: true,
    cacheControl: false,
    dotfiles: "deny",
    setHeaders: (res, path) => {
      const hashed = /[/\\]assets[/\\]/.test(path);
      // The page itself must be revalidated, so a new build's asset names are picked up at once.
      res.setHeader("cache-control", hashed ? IMMUTABLE : "no-cache");
    },
  });
  // The router ignores trailing slashes, so this one route answers /console and /console/.
  app.get(CONSOLE_PREFIX, (_request, reply) => reply.sendFile("index.html"));
}
