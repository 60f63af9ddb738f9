import { defineConfig } from "vite";

/**
 * The web console, built into build/console by `npm run build` and served by the server under
 * /console. Everything is bundled (no CDN); file names carry a content hash so they can be cached
 * for good, and nothing is inlined into the page, so the CSP can forbid inline script and style.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  logLevel: "warn",
  build: {
    outDir: "../build/console",
    emptyOutDir: true,
    assetsDir: "assets",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    reportCompressedSize: false,
  },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
});
