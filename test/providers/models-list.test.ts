import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { modelsCommand } from "../../src/cli/models-command.js";

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
    expect(text).not.toContain("sk-never-printed");
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
});
