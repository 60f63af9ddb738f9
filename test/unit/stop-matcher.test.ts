import { describe, expect, it } from "vitest";
import { StopMatcher } from "../../src/backends/local/stop-matcher.js";

/** Pushes the pieces in order and returns everything emitted, the held rest and whether it stopped. */
function run(stops: string[], pieces: string[]) {
  const matcher = new StopMatcher(stops);
  let emitted = "";
  for (const piece of pieces) {
    const { emit, stopped } = matcher.push(piece);
    emitted += emit;
    if (stopped) return { emitted, stopped: true, rest: "" };
  }
  return { emitted, stopped: false, rest: matcher.flush() };
}

describe("StopMatcher", () => {
  it("passes text straight through when there are no stops", () => {
    const matcher = new StopMatcher([]);
    expect(matcher.push("hello <")).toEqual({ emit: "hello <", stopped: false });
    expect(matcher.push("/s>")).toEqual({ emit: "/s>", stopped: false });
    expect(matcher.flush()).toBe("");
  });

  it("stops within one piece and emits only the text before the stop", () => {
    const matcher = new StopMatcher(["END"]);
    expect(matcher.push("one two END three")).toEqual({ emit: "one two ", stopped: true });
  });

  it("finds a stop split across pushes", () => {
    expect(run(["</end>"], ["Hello </", "en", "d> tail"])).toEqual({
      emitted: "Hello ",
      stopped: true,
      rest: "",
    });
    expect(run(["STOP"], ["S", "T", "O", "P"])).toEqual({ emitted: "", stopped: true, rest: "" });
  });

  it("holds a possible prefix back and releases it once it diverges", () => {
    const matcher = new StopMatcher(["</end>"]);
    expect(matcher.push("a </e")).toEqual({ emit: "a ", stopped: false });
    expect(matcher.push("x")).toEqual({ emit: "</ex", stopped: false });
    expect(matcher.flush()).toBe("");
  });

  it("releases only the part that can no longer start a stop", () => {
    const matcher = new StopMatcher(["aab"]);
    expect(matcher.push("xaa")).toEqual({ emit: "x", stopped: false });
    // "aaa": the last "aa" may still become "aab"; the first "a" cannot.
    expect(matcher.push("a")).toEqual({ emit: "a", stopped: false });
    expect(matcher.push("b")).toEqual({ emit: "", stopped: true });
  });

  it("flush returns the held text when generation ends for another reason", () => {
    const matcher = new StopMatcher(["###"]);
    expect(matcher.push("total: ##")).toEqual({ emit: "total: ", stopped: false });
    expect(matcher.flush()).toBe("##");
    expect(matcher.flush()).toBe("");
  });

  it("with several stops, the one that starts earliest wins", () => {
    expect(new StopMatcher(["world", "lo"]).push("hello world")).toEqual({ emit: "hel", stopped: true });
    expect(new StopMatcher(["lo", "world"]).push("hello world")).toEqual({ emit: "hel", stopped: true });
    expect(run(["\n\n", "User:"], ["Answer.", " User", ":\n\nmore"])).toEqual({
      emitted: "Answer. ",
      stopped: true,
      rest: "",
    });
  });

  it("holds back a prefix of any of the stops", () => {
    const matcher = new StopMatcher(["<|im_end|>", "\n\nUser"]);
    expect(matcher.push("text\n")).toEqual({ emit: "text", stopped: false });
    expect(matcher.push("\nUs")).toEqual({ emit: "", stopped: false });
    expect(matcher.push("ual")).toEqual({ emit: "\n\nUsual", stopped: false });
    expect(matcher.push(" <|im")).toEqual({ emit: " ", stopped: false });
    expect(matcher.push("_end|>")).toEqual({ emit: "", stopped: true });
  });

  it("stops at the very start with nothing emitted", () => {
    expect(new StopMatcher(["STOP"]).push("STOP and more")).toEqual({ emit: "", stopped: true });
    expect(run(["\n"], ["\n", "never"])).toEqual({ emitted: "", stopped: true, rest: "" });
  });

  it("handles empty pushes", () => {
    const matcher = new StopMatcher(["xyz"]);
    expect(matcher.push("")).toEqual({ emit: "", stopped: false });
    expect(matcher.push("ax")).toEqual({ emit: "a", stopped: false });
    expect(matcher.push("")).toEqual({ emit: "", stopped: false });
    expect(matcher.push("yz")).toEqual({ emit: "", stopped: true });
  });

  it("handles multi-byte text", () => {
    expect(run(["。"], ["你好", "世界。", "再见"])).toEqual({ emitted: "你好世界", stopped: true, rest: "" });
    expect(run(["🛑!"], ["go 🛑", "?"])).toEqual({ emitted: "go 🛑?", stopped: false, rest: "" });
  });
});
