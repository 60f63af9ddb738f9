import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { RecordedRequest } from "./mock-openai-upstream.js";

/** A mock upstream's server on loopback, listening. */
export interface RecordingServer {
  url: string;
  /** Cuts the responses held open (a hang fault) and every connection, then stops listening. */
  close(): Promise<void>;
}

/**
 * Where the Anthropic- and Gemini-shaped mocks start: each request's JSON body is read and
 * recorded into `requests`, then `answer` writes the response. A response `answer` adds to
 * `hanging` is never answered and is cut when the server closes.
 */
export async function startRecordingServer(
  requests: RecordedRequest[],
  answer: (
    recorded: RecordedRequest,
    req: IncomingMessage,
    res: ServerResponse,
    hanging: Set<ServerResponse>,
  ) => Promise<void>,
): Promise<RecordingServer> {
  const hanging = new Set<ServerResponse>();
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
    const recorded = { path: req.url ?? "", headers: req.headers, body };
    requests.push(recorded);
    await answer(recorded, req, res, hanging);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
