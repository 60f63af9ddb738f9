/**
 * The node flags a server runs with (main.ts's shebang and `npm start` pass them; a test keeps
 * them equal, and the benchmarks start the server with them).
 *
 * A young generation of up to 32 MiB per semi-space (V8's default is 16): a proxied request
 * allocates ~70 KiB, so under load the default scavenges every ~200 requests, and each scavenge
 * copies what the requests in flight hold. Measured (bench/RESULTS.md, one build, three flags,
 * interleaved 1 s slices at c=16): 16 MiB 2,536, 32 MiB 2,811 (+11%), 64 MiB 2,751 requests per
 * CPU-second. The price is RSS under load (peak 236 → 295 MiB in the upstream bench); idle, V8's
 * memory reducer shrinks it back (~100 MiB 40 s after start either way, demo models). A 4 MiB
 * one (used before) cost 8–14% and saved nothing once the server idled.
 */
export const SERVE_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=32"];
