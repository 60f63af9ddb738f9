/**
 * Imports point one way (ARCHITECTURE.md, "Layers"). `npm run check` runs this; a wrong import
 * fails CI. Lower layers never import higher ones:
 *
 *   entry (main.ts, app.ts, server.ts, composition/, cli/)
 *     api/            parse, call the service, encode
 *     http/           the HTTP edge: error envelope, SSE, streaming driver, hooks
 *     generation/     the request lifecycle, no HTTP
 *     router/ backends/ admin/
 *     auth/ limits/ usage/        (access)
 *     storage/ config/ observability/ models/ engine-build/ grammar/ console/ queue/
 *     core/           types and errors every layer shares
 */

/** A path pattern for top-level folders (or entry files) of src/. */
const under = (...names) => `^src/(${names.join("|")})(/|$)`;

const ENTRY = ["main\\.ts", "app\\.ts", "server\\.ts", "composition", "cli"];

/** Each rule: files in `from` may not import files in `to`. */
const layers = [
  ["core is the bottom layer", ["core"], ["(?!core/)[^/]+"]],
  ["storage sits on core only", ["storage"], ["(?!core/|storage/)[^/]+"]],
  ["config sits on core only", ["config"], ["(?!core/|config/)[^/]+"]],
  ["console (static files for the browser) sits on core only", ["console"], ["(?!core/|console/)[^/]+"]],
  ["grammar (JSON Schema → GBNF) sits on core only", ["grammar"], ["(?!core/|grammar/)[^/]+"]],
  ["queue (durable leased jobs) sits on core only", ["queue"], ["(?!core/|queue/)[^/]+"]],
  [
    "access (auth, limits, usage) sits on storage, config and core",
    ["auth", "limits", "usage"],
    [
      "api",
      "http",
      "generation",
      "router",
      "backends",
      "admin",
      "observability",
      "models",
      "engine-build",
      ...ENTRY,
    ],
  ],
  ["router sits on core and config", ["router"], ["(?!core/|config/|router/)[^/]+"]],
  [
    "backends never reach the edge, the service, access or storage",
    ["backends"],
    ["api", "http", "generation", "router", "auth", "limits", "usage", "storage", "admin", ...ENTRY],
  ],
  [
    "observability knows no engine, route or service",
    ["observability"],
    ["api", "http", "generation", "router", "backends", "auth", "limits", "usage", "admin", ...ENTRY],
  ],
  [
    "admin sits on access, storage and core",
    ["admin"],
    ["api", "http", "generation", "router", "backends", ...ENTRY],
  ],
  [
    "the generation service has no HTTP in it",
    ["generation"],
    ["api", "http", "backends", "admin", ...ENTRY],
  ],
  [
    "the HTTP edge has no routes or engines in it",
    ["http"],
    ["api", "backends", "router", "admin", ...ENTRY],
  ],
  ["routes do not build what they use", ["api"], ["backends", ...ENTRY]],
  [
    "tooling sits on config and core",
    ["models", "engine-build"],
    [
      "api",
      "http",
      "generation",
      "router",
      "backends",
      "auth",
      "limits",
      "usage",
      "admin",
      "storage",
      ...ENTRY,
    ],
  ],
];

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A cycle between modules makes every module in it depend on all the others.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "llama-bindings-only-where-a-model-runs",
      severity: "error",
      comment:
        "node-llama-cpp (tens of MiB once loaded) is loaded only where a model runs in this process: the in-process engine, the runner child, and CLI tools; elsewhere type imports, or the engine factory's dynamic import.",
      from: {
        path: "^src/",
        pathNot: "^src/(backends/local/engines/(in-process/|runner/runner-child[.]ts)|cli/|models/)",
      },
      to: {
        path: "(^|/)node_modules/node-llama-cpp/|^src/backends/local/engines/in-process/",
        dependencyTypesNot: ["type-only", "dynamic-import"],
      },
    },
    {
      name: "drivers-only-when-configured",
      severity: "error",
      comment:
        "The Postgres driver and the Redis client are loaded only when configured: a static import only in the Redis limit store, which is itself imported dynamically.",
      from: { path: "^src/", pathNot: "^src/limits/redis-limit-store[.]ts$" },
      to: {
        path: "(^|/)node_modules/(pg|ioredis)/|^src/limits/redis-limit-store[.]ts$",
        dependencyTypesNot: ["type-only", "dynamic-import"],
      },
    },
    ...layers.map(([comment, from, to], i) => ({
      name: `layer-${i + 1}`,
      comment,
      severity: "error",
      from: { path: under(...from) },
      to: { path: `^src/(${to.join("|")})(/|$)` },
    })),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Type-only imports count: a type from a higher layer couples the layers just the same.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "\\.mjs$" },
  },
};
