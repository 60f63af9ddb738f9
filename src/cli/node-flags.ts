/**
 * The node flags a server runs with (main.ts's shebang and `npm start` pass them; a test keeps
 * them equal). V8's young generation: Node's default of 16 MiB per semi-space keeps 32 MiB
 * committed that a server idling with its models in llama-server never needs (idle RSS 132 →
 * 114 MiB measured, bench/RESULTS.md); the price is a scavenge per 4 MiB allocated instead of
 * per 16, and the benchmarks start the server with these same flags.
 */
export const SERVE_NODE_FLAGS = ["--max-semi-space-size=4"] as const;
