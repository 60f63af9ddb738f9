import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { modelsCommand } from "../../src/cli/models-command.js";
import { FAIL_FAST_REDIS_OPTIONS } from "../../src/limits/redis-limit-store.js";
import { RedisDeploymentStateStore } from "../../src/router/redis-deployment-state.js";
import { deleteRedisKeys, hasRedis, REDIS_URL, redisTestPrefix } from "../helpers/redis.js";
import { manualTiming, startGateway } from "./helpers/gateway.js";
import { startMockOpenAiUpstream } from "./helpers/mock-openai-upstream.js";

const withRedis = await hasRedis();
const CLI_ADMIN_KEY = "sk-sb-models-list-cli-admin-01";

describe("switchboard models list with routed models", () => {
  afterEach(() => {
    delete process.env.SB_TEST_UPSTREAM_KEY;
  });

  it("shows each deployment, its provider, host and whether a key is set, never the key", async () => {
    process.env.SB_TEST_UPSTREAM_KEY = "sk-never-printed-12345";
    const dir = mkdtempSync(join(tmpdir(), "sb-list-"));
    const file = join(dir, "switchboard.yaml");
    writeFileSync(
      file,
      [
        "demo_model: false",
        "routed_models:",
        "  - id: smart",
        "    fallbacks: [cheap]",
        "    deployments:",
        "      - provider: openai-compatible",
        "        base_url: https://api.example.com/v1",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the config file's own ${VAR} syntax
        "        api_key: ${SB_TEST_UPSTREAM_KEY}",
        "        model: big-model",
        "        weight: 3",
        "  - id: cheap",
        "    deployments:",
        "      - provider: openai-compatible",
        "        name: vllm",
        "        base_url: http://vllm.internal:8000/v1",
        "        model: small",
      ].join("\n"),
    );
    const lines: string[] = [];
    expect(await modelsCommand(["list", "--config", file], (line) => lines.push(line))).toBe(0);
    const text = lines.join("\n");
    expect(text).toContain("smart — routed, least_in_flight");
    expect(text).toContain(
      "deployment openai-compatible:big-model  openai-compatible api.example.com  model big-model  weight 3  [key set]",
    );
    expect(text).toContain(
      "deployment vllm  openai-compatible vllm.internal:8000  model small  weight 1  [no key]",
    );
    expect(text).toContain("fallbacks  cheap");
    expect(text).toContain("Circuit states are kept by each running server");
    expect(text).not.toContain("sk-never-printed");
  });

  it.runIf(withRedis)("shows each circuit as the instances share it in Redis", async () => {
    const prefix = redisTestPrefix();
    const store = new RedisDeploymentStateStore(new Redis(REDIS_URL, FAIL_FAST_REDIS_OPTIONS), {
      prefix,
      closeClient: true,
    });
    try {
      // What a server's router records when a deployment fails twice in a row (breaker_failures 2).
      const state = store.forDeployment("smart", "flaky", {
        breakerFailures: 2,
        breakerCooldownMs: 600_000,
        probeTtlMs: 60_000,
      });
      for (let i = 0; i < 2; i++) {
        const admission = await state.admit(1);
        if (admission.admitted) await state.failed(admission);
      }
      const dir = mkdtempSync(join(tmpdir(), "sb-list-"));
      const file = join(dir, "switchboard.yaml");
      writeFileSync(
        file,
        [
          "demo_model: false",
          `redis: ${REDIS_URL}`,
          `redis_prefix: "${prefix}"`,
          "router:",
          "  breaker_failures: 2",
          "routed_models:",
          "  - id: smart",
          "    deployments:",
          "      - provider: openai-compatible",
          "        name: flaky",
          "        base_url: https://a.example.com/v1",
          "        model: m",
          "      - provider: openai-compatible",
          "        name: steady",
          "        base_url: https://b.example.com/v1",
          "        model: m",
        ].join("\n"),
      );
      const lines: string[] = [];
      expect(await modelsCommand(["list", "--config", file], (line) => lines.push(line))).toBe(0);
      const text = lines.join("\n");
      expect(text).toContain(
        "deployment flaky  openai-compatible a.example.com  model m  weight 1  [no key]  circuit open (2 failures in a row)",
      );
      expect(text).toContain(
        "deployment steady  openai-compatible b.example.com  model m  weight 1  [no key]  circuit closed",
      );
    } finally {
      await store.close();
      await deleteRedisKeys(prefix);
    }
  });

  it("asks a running server for its circuits with --server and the configured admin key", async () => {
    const upstream = await startMockOpenAiUpstream();
    const config = {
      admin_key: CLI_ADMIN_KEY,
      router: { breaker_failures: 2, breaker_cooldown_ms: 600_000 },
      routed_models: [
        {
          id: "smart",
          deployments: [
            {
              provider: "openai-compatible",
              name: "flaky",
              base_url: `${upstream.url}/v1`,
              model: "m",
              max_retries: 0,
            },
            {
              provider: "openai-compatible",
              name: "steady",
              base_url: `${upstream.url}/v1`,
              model: "m",
              weight: 0,
            },
          ],
        },
      ],
    };
    const gateway = await startGateway(config, manualTiming());
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: CLI_ADMIN_KEY, maxRetries: 0 });
      // Two failures in a row on "flaky" (the standby answers each time): its circuit opens.
      for (let i = 0; i < 2; i++) {
        upstream.faults.push({ status: 500 });
        await client.chat.completions.create({ model: "smart", messages: [{ role: "user", content: "Hi" }] });
      }
      const file = join(mkdtempSync(join(tmpdir(), "sb-list-")), "switchboard.yaml");
      writeFileSync(file, JSON.stringify({ demo_model: false, ...config }));
      const lines: string[] = [];
      const code = await modelsCommand(["list", "--config", file, `--server=${gateway.url}/`], (line) =>
        lines.push(line),
      );
      const text = lines.join("\n");
      expect(code).toBe(0);
      expect(text).toMatch(/deployment flaky .* circuit open \(2 failures in a row\)/);
      expect(text).toMatch(/deployment steady .* circuit closed/);
      expect(text).toContain(`Circuit states as ${gateway.url} reports them.`);
      expect(text).not.toContain(CLI_ADMIN_KEY);

      // Without the admin key the server refuses, and the command says so and fails.
      writeFileSync(file, JSON.stringify({ demo_model: false, ...config, admin_key: undefined }));
      const refused: string[] = [];
      expect(
        await modelsCommand(["list", "--config", file, "--server", gateway.url], (l) => refused.push(l)),
      ).toBe(1);
      expect(refused.join("\n")).toContain(
        `Circuit states from ${gateway.url}: not read (HTTP 401: set admin_key`,
      );
    } finally {
      await gateway.stop();
      await upstream.close();
    }
  });

  it("says when --server cannot be reached, and refuses a --server that is not an http(s) URL", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "sb-list-")), "switchboard.yaml");
    writeFileSync(
      file,
      "demo_model: false\nrouted_models:\n  - id: a\n    deployments:\n      - provider: openai-compatible\n        base_url: http://x.test/v1\n        model: m\n",
    );
    const lines: string[] = [];
    // Port 9 on loopback (discard): nothing listens there.
    expect(
      await modelsCommand(["list", "--config", file, "--server", "http://127.0.0.1:9"], (l) => lines.push(l)),
    ).toBe(1);
    expect(lines.join("\n")).toContain("Circuit states from http://127.0.0.1:9: not read (");
    await expect(modelsCommand(["list", "--config", file, "--server", "ftp://x"], () => {})).rejects.toThrow(
      "--server takes the server's http:// or https:// URL",
    );
    await expect(
      modelsCommand(["pull", "--config", file, "--server", "http://x.test"], () => {}),
    ).rejects.toThrow("--server goes with 'models list' only");
  });

  it("names replicas of one upstream model apart by host", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sb-list-"));
    const file = join(dir, "switchboard.yaml");
    writeFileSync(
      file,
      "demo_model: false\nrouted_models:\n  - id: a\n    deployments:\n      - provider: openai-compatible\n        base_url: http://gpu-1:8000/v1\n        model: m\n      - provider: openai-compatible\n        base_url: http://gpu-2:8000/v1\n        model: m\n",
    );
    const lines: string[] = [];
    await modelsCommand(["list", "--config", file], (line) => lines.push(line));
    expect(lines.join("\n")).toContain("deployment openai-compatible:m@gpu-1:8000");
    expect(lines.join("\n")).toContain("deployment openai-compatible:m@gpu-2:8000");
  });

  it("refuses a fallback that names no configured model, naming the field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sb-list-"));
    const file = join(dir, "switchboard.yaml");
    writeFileSync(
      file,
      "routed_models:\n  - id: a\n    fallbacks: [nope]\n    deployments:\n      - provider: openai-compatible\n        base_url: http://x.test/v1\n        model: m\n",
    );
    await expect(modelsCommand(["list", "--config", file], () => {})).rejects.toThrow(
      "routed_models.0.fallbacks.0: 'nope' is not another configured model",
    );
  });

  it("refuses two deployments of one model with the same name, naming the field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sb-list-"));
    const file = join(dir, "switchboard.yaml");
    writeFileSync(
      file,
      "routed_models:\n  - id: a\n    deployments:\n      - provider: openai-compatible\n        name: x\n        base_url: http://h1/v1\n        model: m\n      - provider: openai-compatible\n        name: x\n        base_url: http://h2/v1\n        model: m\n",
    );
    await expect(modelsCommand(["list", "--config", file], () => {})).rejects.toThrow(
      "routed_models.0.deployments.1.name: another deployment of this model is also named 'x'",
    );
  });
});
