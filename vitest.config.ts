import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
    globalSetup: ["test/helpers/global-setup.ts"],
    projects: [
      {
        extends: true,
        // Every test, on the engine SWITCHBOARD_TEST_ENGINE names (in-process unless set).
        test: { name: "default", include: ["test/**/*.test.ts"], sequence: { groupOrder: 1 } },
      },
      {
        extends: true,
        // The API and hardening suites again on the engine `auto` picks (llama-server where a
        // binary exists, as on CI; else the runner), after the first project (groups run lowest
        // first; 0 would leave the order unset), one file at a time.
        test: {
          name: "auto-engine",
          include: ["test/api/**/*.test.ts", "test/hardening/**/*.test.ts"],
          env: { SWITCHBOARD_TEST_ENGINE: "auto" },
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
