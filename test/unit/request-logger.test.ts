import { Writable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { RequestLogger } from "../../src/observability/request-logger.js";

/** A server logger at `level` whose JSON lines land in the returned array. */
function capturedLogger(level: string) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

describe("a request's logger", () => {
  it("writes its lines with the request's id bound, and the server's redaction", () => {
    const { logger, lines } = capturedLogger("info");
    const log = new RequestLogger(logger, { requestId: "req_1" }, {});
    log.warn({ authorization: "Bearer sk-secret", attempt: 2 }, "reply was already sent");
    log.error(new Error("boom"));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: 40,
      requestId: "req_1",
      attempt: 2,
      authorization: "[redacted]",
      msg: "reply was already sent",
      service: "switchboard",
    });
    expect(lines[1]).toMatchObject({ level: 50, requestId: "req_1", err: { message: "boom" } });
    // Bound once, not once per line.
    expect(Object.keys(lines[0] as object).filter((k) => k === "requestId")).toHaveLength(1);
  });

  it("binds nothing for a request that writes no line, or only lines at levels that are off", () => {
    const { logger, lines } = capturedLogger("info");
    const child = vi.spyOn(logger, "child");
    const log = new RequestLogger(logger, { requestId: "req_2" }, {});
    log.debug("not written");
    log.trace("not written");
    log.silent("never written");
    expect(lines).toEqual([]);
    expect(child).not.toHaveBeenCalled();
    expect(log.level).toBe("info");
    log.info("written");
    expect(child).toHaveBeenCalledTimes(1);
    expect(lines).toEqual([expect.objectContaining({ requestId: "req_2", msg: "written" })]);
  });

  it("makes children that keep the request's id, and follows a level set on it", () => {
    const { logger, lines } = capturedLogger("info");
    const log = new RequestLogger(logger, { requestId: "req_3" }, {});
    log.child({ part: "stream" }).info("from a child");
    log.level = "debug";
    log.debug("now written");
    expect(lines).toEqual([
      expect.objectContaining({ requestId: "req_3", part: "stream", msg: "from a child" }),
      expect.objectContaining({ requestId: "req_3", level: 20, msg: "now written" }),
    ]);
    // The server's logger keeps its own level.
    expect(logger.level).toBe("info");
  });
});
