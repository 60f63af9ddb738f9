import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { type Gateway, readRawStream, startGateway } from "./helpers/gateway.js";
import { type Fault, type MockUpstream, startMockOpenAiUpstream } from "./helpers/mock-openai-upstream.js";
import { expectRequestsConform } from "./helpers/upstream-request-schemas.js";

/**
 * What a client can make the gateway send upstream, and what comes back: where it connects and
 * with which headers come from the config alone, and neither the upstream key nor a configured
 * header's value ever reaches a client, /metrics, /ready, the admin API or the log, even when the
 * upstream echoes them in an error.
 */

const UPSTREAM_KEY = "sk-upstream-gwsec-5f0c2a9d7e41b386";
const GATEWAY_TOKEN = "gwtok-3b8e6d1a90c4f752-from-config";
const ADMIN_KEY = "sk-sb-admin-gateway-security-0001";

/** The config as an operator writes it: the secrets come from the environment. */
function loadGatewayConfig(upstreamUrl: string) {
  const file = join(mkdtempSync(join(tmpdir(), "sb-gwsec-")), "switchboard.yaml");
  const deployment = {
    provider: "openai-compatible",
    base_url: `${upstreamUrl}/v1`,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the config file's own ${VAR} syntax
    api_key: "${SB_GWSEC_UPSTREAM_KEY}",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the config file's own ${VAR} syntax
    headers: { "x-gateway-token": "${SB_GWSEC_GATEWAY_TOKEN}", "x-client-version": "2" },
    model: "upstream-model",
    max_retries: 0,
  };
  // JSON is YAML.
  writeFileSync(file, JSON.stringify({ routed_models: [{ id: "remote", deployments: [deployment] }] }));
  return loadConfig({
    file,
    env: { SB_GWSEC_UPSTREAM_KEY: UPSTREAM_KEY, SB_GWSEC_GATEWAY_TOKEN: GATEWAY_TOKEN },
  });
}

describe("what a client can make the gateway send upstream, and what comes back", () => {
  let upstream: MockUpstream;
  /** Where a request would go if a field could redirect it: it must never be called. */
  let decoy: MockUpstream;
  let gateway: Gateway;

  beforeAll(async () => {
    upstream = await startMockOpenAiUpstream();
    decoy = await startMockOpenAiUpstream();
    const loaded = loadGatewayConfig(upstream.url);
    const deployment = loaded.routed_models[0]?.deployments[0] as { api_key?: string };
    // The environment filled the placeholders in.
    expect(deployment.api_key).toBe(UPSTREAM_KEY);
    gateway = await startGateway({
      routed_models: loaded.routed_models,
      // Auth on: every client sends a key of its own, which must stay here.
      admin_key: ADMIN_KEY,
      log_level: "debug",
      // The failures these tests provoke must not open the circuit for the tests after them.
      router: { breaker_failures: 1000 },
    });
  });
  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    await decoy?.close();
  });
  beforeEach(() => {
    for (const mock of [upstream, decoy]) {
      mock.requests.length = 0;
      mock.faults.length = 0;
      mock.violations.length = 0;
    }
  });
  afterEach(() => {
    expectRequestsConform(upstream);
    expect(decoy.requests).toEqual([]);
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${gateway.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  const get = (path: string) =>
    fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  const chat = (extra: Record<string, unknown> = {}) => ({
    model: "remote",
    messages: [{ role: "user", content: "Hi" }],
    ...extra,
  });
  const embeddings = (extra: Record<string, unknown> = {}) => ({ model: "remote", input: ["a"], ...extra });

  describe("request fields that would name a host, a key or headers", () => {
    const fields = (url: string): Record<string, unknown> => ({
      base_url: `${url}/v1`,
      api_base: `${url}/v1`,
      api_key: "sk-attacker-chosen",
      headers: { "x-injected": "1" },
      extra_headers: { "x-injected": "1" },
      extra_body: { base_url: `${url}/v1` },
    });

    it("are refused on chat completions and embeddings with a 400 naming the field, and nothing is sent", async () => {
      for (const [field, value] of Object.entries(fields(decoy.url))) {
        for (const [path, body] of [
          ["/v1/chat/completions", chat({ [field]: value })],
          ["/v1/chat/completions", chat({ [field]: value, stream: true })],
          ["/v1/embeddings", embeddings({ [field]: value })],
        ] as const) {
          const response = await post(path, body);
          const error = ((await response.json()) as { error: Record<string, unknown> }).error;
          expect([path, field, response.status]).toEqual([path, field, 400]);
          expect(error).toMatchObject({
            type: "invalid_request_error",
            code: "unknown_parameter",
            param: field,
          });
          expect(error.message).toContain(field);
        }
      }
      expect(upstream.requests).toEqual([]);
    });

    it("inside metadata, which takes any keys, are kept to this server: the upstream sees the configured host, headers and a body without them", async () => {
      const response = await post(
        "/v1/chat/completions",
        chat({
          metadata: { base_url: `${decoy.url}/v1`, api_key: "sk-attacker-chosen", headers: "x-injected: 1" },
        }),
      );
      expect(response.status).toBe(200);
      expect(upstream.requests).toHaveLength(1);
      const sent = upstream.requests[0];
      expect(sent?.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
      expect(sent?.headers["x-injected"]).toBeUndefined();
      expect(JSON.stringify(sent?.body)).not.toContain(decoy.url);
      expect(JSON.stringify(sent?.body)).not.toContain("sk-attacker-chosen");
    });
  });

  it("forwards no client header: the upstream gets the configured key and headers, and its own transport headers only", async () => {
    const clientHeaders = {
      cookie: "session=client-cookie-value",
      "openai-organization": "org-client-chosen",
      "openai-project": "proj_client_chosen",
      "x-forwarded-for": "203.0.113.7",
      "x-foo": "client-foo-value",
    };
    await post("/v1/chat/completions", chat(), clientHeaders);
    await readRawStream(await post("/v1/chat/completions", chat({ stream: true }), clientHeaders));
    await post("/v1/embeddings", embeddings(), clientHeaders);
    expect(upstream.requests.map((r) => r.path)).toEqual([
      "/v1/chat/completions",
      "/v1/chat/completions",
      "/v1/embeddings",
    ]);
    for (const request of upstream.requests) {
      expect(Object.keys(request.headers).sort()).toEqual([
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "host",
        "x-client-version",
        "x-gateway-token",
      ]);
      expect(request.headers).toMatchObject({
        authorization: `Bearer ${UPSTREAM_KEY}`,
        "x-gateway-token": GATEWAY_TOKEN,
        "x-client-version": "2",
        "content-type": "application/json",
        host: new URL(upstream.url).host,
      });
      const sent = JSON.stringify(request.headers);
      for (const value of [ADMIN_KEY, ...Object.values(clientHeaders)]) expect(sent).not.toContain(value);
    }
  });

  describe("an upstream that echoes the key and the configured gateway token", () => {
    const echo = `Incorrect API key provided: ${UPSTREAM_KEY} (token ${GATEWAY_TOKEN})`;
    const expectClean = (text: string) => {
      expect(text).not.toContain(UPSTREAM_KEY);
      expect(text).not.toContain(GATEWAY_TOKEN);
    };
    const headersOf = (response: Response) => JSON.stringify([...response.headers.entries()]);

    it("has both redacted from the message a 4xx passes on to the client, but not a short header value", async () => {
      upstream.faults.push({ status: 400, body: { error: { message: `${echo} for client version 2` } } });
      const response = await post("/v1/chat/completions", chat());
      const text = await response.text();
      expect(response.status).toBe(400);
      // x-client-version: "2" is too short to be a secret: blanking every "2" would only garble the message.
      expect(text).toContain(
        "Incorrect API key provided: [redacted] (token [redacted]) for client version 2",
      );
      expectClean(text + headersOf(response));
    });

    it("never shows them for 401, 500 and 503, on chats and embeddings", async () => {
      const faults: Fault[] = [401, 500, 503].map((status) => ({
        status,
        body: { error: { message: echo } },
      }));
      for (const fault of faults) {
        for (const [path, body] of [
          ["/v1/chat/completions", chat()],
          ["/v1/embeddings", embeddings()],
        ] as const) {
          upstream.faults.push(fault);
          const response = await post(path, body);
          expect(response.status).toBeGreaterThanOrEqual(400);
          expectClean((await response.text()) + headersOf(response));
        }
      }
      expect(upstream.requests).toHaveLength(6);
    });

    it("has them redacted from an error the upstream reports inside its stream, before and after the answer began", async () => {
      upstream.faults.push({ errorEventAfter: 0, message: echo });
      const before = await post("/v1/chat/completions", chat());
      const beforeText = await before.text();
      expect(before.status).toBe(502);
      expect(beforeText).toContain("[redacted]");
      expectClean(beforeText);

      upstream.faults.push({ errorEventAfter: 2, message: echo });
      const { events, done } = await readRawStream(
        await post("/v1/chat/completions", chat({ stream: true })),
      );
      expect(done).toBe(false);
      const last = JSON.parse(events.at(-1) ?? "{}") as { error?: { message?: string } };
      expect(last.error?.message).toContain("[redacted]");
      expectClean(events.join("\n"));
    });

    it("leaves no trace of them in /metrics, /ready, /admin/models or the server's log", async () => {
      upstream.faults.push(
        { status: 400, body: { error: { message: echo } } },
        { status: 500, body: { error: { message: echo } } },
        { errorEventAfter: 1, message: echo },
      );
      for (let i = 0; i < 3; i++) await (await post("/v1/chat/completions", chat())).text();
      const pages = await Promise.all(["/metrics", "/ready", "/admin/models"].map(async (p) => get(p)));
      for (const page of pages) expect(page.status).toBe(200);
      const texts = await Promise.all(pages.map((p) => p.text()));
      expect(texts[2]).toContain('"remote"');
      for (const text of texts) expectClean(text);
      const logs = gateway.logs.join("");
      // The failures were logged (so there was a chance to leak), without the secrets.
      expect(logs).toContain("upstream");
      expectClean(logs);
    });
  });
});
