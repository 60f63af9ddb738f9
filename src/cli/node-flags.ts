/**
 * The node flags a server runs with (main.ts's shebang and `npm start` pass them; a test keeps
 * them equal, and the benchmarks start the server with them). None today: V8's defaults are
 * measured best here. A 4 MiB young generation (`--max-semi-space-size=4`, used before) cost
 * 8–14% of the gateway's requests per CPU-second for nothing once the server idles: with the
 * default 16 MiB, V8's memory reducer brings an idle server down to the same RSS (~100 MiB with
 * the demo models on llama-server, 15–20 s after start; bench/RESULTS.md).
 */
export const SERVE_NODE_FLAGS: readonly string[] = [];
