import { describe, expect, it } from "vitest";
import {
  DecodeStepBarrier,
  MAX_BATCH_HELD_STEPS,
} from "../../src/backends/local/engines/in-process/decode-step-barrier.js";
import { settledSoon } from "../helpers/wait-for.js";

describe("DecodeStepBarrier", () => {
  it("lets a generation alone decode at once", () => {
    const barrier = new DecodeStepBarrier();
    const turn = barrier.turn();
    expect(turn.beforeDecode()).toBeUndefined();
    turn.afterDecode();
    expect(turn.beforeDecode()).toBeUndefined();
  });

  it("holds a generation back until every decode in flight has its token, then releases all together", async () => {
    const barrier = new DecodeStepBarrier();
    const a = barrier.turn();
    const b = barrier.turn();
    const c = barrier.turn();
    // b and c asked while a's decode runs: they wait for it, as the next batch.
    expect(a.beforeDecode()).toBeUndefined();
    const waitB = b.beforeDecode();
    const waitC = c.beforeDecode();
    expect(await settledSoon(waitB)).toBe(false);
    a.afterDecode();
    // a asks again before the release: it joins the same batch instead of going alone.
    const waitA = a.beforeDecode();
    expect(await settledSoon(waitB)).toBe(true);
    expect(await settledSoon(waitC)).toBe(true);
    expect(await settledSoon(waitA)).toBe(true);
    // Now three decodes are in flight: nobody new goes until all three are in.
    b.afterDecode();
    c.afterDecode();
    const again = b.beforeDecode();
    expect(await settledSoon(again)).toBe(false);
    a.afterDecode();
    expect(await settledSoon(again)).toBe(true);
  });

  it("never waits for a generation that holds no decode (a reader that stopped pulling)", async () => {
    const barrier = new DecodeStepBarrier();
    const slowReader = barrier.turn();
    const other = barrier.turn();
    expect(slowReader.beforeDecode()).toBeUndefined();
    slowReader.afterDecode();
    // slowReader does not ask again; other goes at once, every time.
    for (let i = 0; i < 3; i++) {
      expect(other.beforeDecode()).toBeUndefined();
      other.afterDecode();
    }
  });

  it("lets go of the decode a closed generation held, so the others are not stuck", async () => {
    const barrier = new DecodeStepBarrier();
    const aborted = barrier.turn();
    const other = barrier.turn();
    expect(aborted.beforeDecode()).toBeUndefined();
    const wait = other.beforeDecode();
    expect(await settledSoon(wait)).toBe(false);
    aborted.close();
    aborted.close();
    expect(await settledSoon(wait)).toBe(true);
    other.afterDecode();
    expect(barrier.turn().beforeDecode()).toBeUndefined();
  });

  it("holds batch generations back while an interactive prompt waits or is decoded, then lets them go", async () => {
    const barrier = new DecodeStepBarrier();
    const batchA = barrier.turn("batch");
    const batchB = barrier.turn("batch");
    expect(batchA.beforeDecode()).toBeUndefined();
    // An interactive request arrives while batch A's step runs; batch B asks for its next step.
    const prompt = barrier.turn("interactive");
    const promptWait = prompt.beforeDecode();
    const batchWait = batchB.beforeDecode();
    batchA.afterDecode();
    // The step after the one in flight is the prompt's alone.
    expect(await settledSoon(promptWait)).toBe(true);
    expect(await settledSoon(batchWait)).toBe(false);
    const batchAgain = batchA.beforeDecode();
    expect(await settledSoon(batchAgain)).toBe(false);
    // Its first token is in: batch work shares the steps again, the interactive one included.
    prompt.afterDecode();
    expect(await settledSoon(batchWait)).toBe(true);
    expect(await settledSoon(batchAgain)).toBe(true);
  });

  it("holds batch generations back for a bounded number of steps while interactive prompts keep coming", async () => {
    const barrier = new DecodeStepBarrier();
    let prompt = barrier.turn("interactive");
    expect(prompt.beforeDecode()).toBeUndefined();
    const batch = barrier.turn("batch");
    const batchWait = batch.beforeDecode();
    let heldSteps = 0;
    for (;;) {
      // The next interactive request's prompt is waiting when the current one's step ends.
      const next = barrier.turn("interactive");
      const nextWait = next.beforeDecode();
      prompt.afterDecode();
      expect(await settledSoon(nextWait)).toBe(true);
      prompt = next;
      if (await settledSoon(batchWait)) break;
      heldSteps++;
      expect(heldSteps).toBeLessThanOrEqual(MAX_BATCH_HELD_STEPS);
    }
    expect(heldSteps).toBe(MAX_BATCH_HELD_STEPS);
    // Having had its turn, the batch line is held again by the prompts that follow.
    batch.afterDecode();
    const again = batch.beforeDecode();
    const later = barrier.turn("interactive");
    const laterWait = later.beforeDecode();
    prompt.afterDecode();
    expect(await settledSoon(laterWait)).toBe(true);
    expect(await settledSoon(again)).toBe(false);
    later.afterDecode();
    expect(await settledSoon(again)).toBe(true);
  });

  it("lets batch work go on when an interactive request is abandoned before its first token", async () => {
    const barrier = new DecodeStepBarrier();
    const prompt = barrier.turn("interactive");
    expect(prompt.beforeDecode()).toBeUndefined();
    const batch = barrier.turn("batch");
    const wait = batch.beforeDecode();
    expect(await settledSoon(wait)).toBe(false);
    prompt.close();
    expect(await settledSoon(wait)).toBe(true);
  });
});
