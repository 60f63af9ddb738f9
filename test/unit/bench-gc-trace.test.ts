import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { parseScavenge, ScavengeLog } from "../../bench/gc-trace.js";

/** A node child that keeps some young objects alive across two scavenges, then runs a full GC. */
const CHILD = `
const kept = [];
for (let i = 0; i < 20000; i++) kept.push({ i, text: "x".repeat(16) });
globalThis.gc({ type: "minor" });
globalThis.gc({ type: "minor" });
globalThis.gc();
console.log("child says", kept.length);
`;

describe("the upstream bench's scavenge trace (--gc)", () => {
  it("totals what a real --trace-gc-nvp child reports, and passes its other output through", async () => {
    const child = spawn(process.execPath, ["--expose-gc", "--trace-gc-nvp", "-e", CHILD], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const passed: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((text: string) => {
      passed.push(text);
      return true;
    }) as typeof process.stdout.write;
    try {
      const log = new ScavengeLog(child.stdout);
      const start = log.mark();
      await once(child, "close");
      const totals = log.since(start);
      expect(totals.scavenges).toBeGreaterThanOrEqual(2);
      // 20,000 small objects stay alive through both: well over 100 KB copied.
      expect(totals.survivedBytes + totals.promotedBytes).toBeGreaterThan(100_000);
      expect(totals.meanPauseMs).toBeGreaterThanOrEqual(0);
      expect(log.since(log.mark()).scavenges).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    // The full GC's line is not a scavenge, and is not passed through; the child's own line is.
    expect(passed.join("")).toBe("child says 20000\n");
  });

  it("reads a scavenge line's pause, survived and promoted bytes, and nothing else", () => {
    const line =
      "[1:0x1]    16613 ms: pause=5.2 mutator=320.5 gc=s reduce_memory=0 scavenge=5.10 " +
      "allocated=26041656 promoted=910352 new_space_survived=1032256 nodes_died_in_new=7";
    expect(parseScavenge(line)).toEqual({ pauseMs: 5.2, survivedBytes: 1032256, promotedBytes: 910352 });
    expect(parseScavenge(line.replace("gc=s", "gc=ms"))).toBeUndefined();
    expect(parseScavenge("[1:0x1] 12 ms: pause=1.0 gc=s")).toBeUndefined();
    expect(parseScavenge("an ordinary line")).toBeUndefined();
  });
});
