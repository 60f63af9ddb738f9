import { findLlamaServer } from "../../src/engine-build/find-llama-server.js";

/**
 * The llama-server binary the engine tests run (config-less discovery: PATH, then the build
 * cache). Without one the tests skip, loudly; SWITCHBOARD_REQUIRE_LLAMA_SERVER=1 (CI) makes
 * that a failure.
 */
export async function llamaServerForTests(): Promise<string | undefined> {
  const found = await findLlamaServer({ binary: process.env.SWITCHBOARD_LLAMA_SERVER_BINARY });
  if (found) return found.path;
  const message =
    "no llama-server binary (PATH, or `switchboard engine build` cache). Run `npm run build && node build/src/main.js engine build`.";
  if (process.env.SWITCHBOARD_REQUIRE_LLAMA_SERVER === "1") {
    throw new Error(`llama-server is required (SWITCHBOARD_REQUIRE_LLAMA_SERVER=1) but there is ${message}`);
  }
  console.warn(
    `\n*** SKIPPING LLAMA-SERVER ENGINE TESTS: ${message} Set SWITCHBOARD_REQUIRE_LLAMA_SERVER=1 to make this a failure. ***\n`,
  );
  return undefined;
}
