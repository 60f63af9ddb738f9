import type { RequestPriority } from "../../../../core/generation.js";

/**
 * Lines up the decodes of a context's generations so that node-llama-cpp runs them as one batch.
 *
 * node-llama-cpp samples each sequence of a decoded batch with its own native call and hands a
 * sequence its token as soon as that call is done. A sequence that asks for its next token at
 * once queues its decode while the others are still being sampled, and the context's dispatch
 * loop, which takes whatever is queued the moment the batch's last sample is in, starts the next
 * batch without the sequences sampled last. Measured here: four streams ran as rotating batches
 * of three (176 decodes for 128 steps); two streams never shared a decode.
 *
 * A generation takes a turn (`DecodeTurn.beforeDecode()`) before it asks for a decode (its
 * prompt or its next token) and hands it back when the token is in (`afterDecode()`). A turn
 * is given at once while no other generation has a decode outstanding. Otherwise the generation
 * waits until every outstanding decode has its token, and all that waited go together on the
 * next turn of the event loop, after node-llama-cpp's dispatch loop has found its queue empty and
 * let go of the context: their decodes queue in one tick and go out as one batch. Nobody waits
 * for a generation that has no decode outstanding (a consumer that stopped reading, a prompt not
 * yet submitted), so a slow reader never holds the others back.
 *
 * Batch work yields to interactive requests here: while an interactive generation's prompt is
 * waiting or being decoded, batch generations ask for no decode, so the prompt is evaluated in a
 * step of its own (at most after the step in flight) instead of beside their tokens, and the
 * interactive request's first token comes about as soon as on an idle engine. They sit out at most
 * `MAX_BATCH_HELD_STEPS` steps in a row, so interactive prompts arriving back to back slow a batch
 * down but never stop it (a prompt is one step, or a few when it is longer than a decode batch).
 */
/** Steps in a row that batch generations wait out for interactive prompts before they go anyway. */
export const MAX_BATCH_HELD_STEPS = 8;

export class DecodeStepBarrier {
  /** Decodes queued or running: each will bring a token. */
  private outstanding = 0;
  /** Interactive generations whose prompt is not decoded yet: batch work holds back meanwhile. */
  private interactivePrompts = 0;
  private waiting: Waiter[] = [];
  private releaseScheduled = false;
  /** Consecutive steps that went without the batch generations waiting for one. */
  private batchHeldSteps = 0;

  /** One generation's use of the barrier; `close()` it when the generation ends, however it ends. */
  turn(priority: RequestPriority = "interactive"): DecodeTurn {
    return new DecodeTurn(this, priority === "batch");
  }

  /** @internal the start of a decode; resolves when the decode may be asked for. */
  acquire(batch: boolean): Promise<void> | undefined {
    if (this.outstanding === 0 && this.waiting.length === 0 && !(batch && this.interactivePrompts > 0)) {
      this.outstanding++;
      return undefined;
    }
    return new Promise((resolve) => {
      this.waiting.push({
        batch,
        go: () => {
          this.outstanding++;
          resolve();
        },
      });
      this.releaseWhenDone();
    });
  }

  /** @internal the decode's token is in (or the generation gave up on it). */
  finish(): void {
    this.outstanding--;
    this.releaseWhenDone();
  }

  /** @internal an interactive generation starts (true) or ends (false) its prompt. */
  interactivePrompt(starts: boolean): void {
    this.interactivePrompts += starts ? 1 : -1;
    if (this.interactivePrompts === 0) this.releaseWhenDone();
  }

  private releaseWhenDone(): void {
    if (this.outstanding > 0 || this.waiting.length === 0 || this.releaseScheduled) return;
    this.releaseScheduled = true;
    setImmediate(() => {
      this.releaseScheduled = false;
      // While an interactive prompt is on its way, batch generations keep waiting: its first token
      // comes from a decode of its own prompt, not one shared with their tokens.
      let holdBatch = this.interactivePrompts > 0 && this.waiting.some((w) => w.batch);
      if (holdBatch && this.batchHeldSteps >= MAX_BATCH_HELD_STEPS) holdBatch = false;
      const released = holdBatch ? this.waiting.filter((w) => !w.batch) : this.waiting;
      this.waiting = holdBatch ? this.waiting.filter((w) => w.batch) : [];
      // A step counts as held only when it goes (someone released) without the batch waiters.
      if (!holdBatch) this.batchHeldSteps = 0;
      else if (released.length > 0) this.batchHeldSteps++;
      for (const waiter of released) waiter.go();
    });
  }
}

interface Waiter {
  batch: boolean;
  go(): void;
}

export class DecodeTurn {
  private holding = false;
  /** An interactive generation between its first decode request and its first token. */
  private inPrompt = false;
  private started = false;

  constructor(
    private readonly barrier: DecodeStepBarrier,
    private readonly batch: boolean,
  ) {}

  /** Await (when it returns a promise) before asking for a decode. */
  beforeDecode(): Promise<void> | undefined {
    if (!this.started) {
      this.started = true;
      if (!this.batch) {
        this.inPrompt = true;
        this.barrier.interactivePrompt(true);
      }
    }
    const wait = this.barrier.acquire(this.batch);
    if (!wait) {
      this.holding = true;
      return undefined;
    }
    return wait.then(() => {
      this.holding = true;
    });
  }

  /** The token of the decode asked for is in. */
  afterDecode(): void {
    if (this.holding) {
      this.holding = false;
      this.barrier.finish();
    }
    this.promptDone();
  }

  /** The generation ends; a decode it still held (an abort, an error, the end of the text) is let go. */
  close(): void {
    this.afterDecode();
  }

  private promptDone(): void {
    if (!this.inPrompt) return;
    this.inPrompt = false;
    this.barrier.interactivePrompt(false);
  }
}
