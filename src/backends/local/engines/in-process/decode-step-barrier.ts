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
 */
export class DecodeStepBarrier {
  /** Decodes queued or running: each will bring a token. */
  private outstanding = 0;
  private waiting: (() => void)[] = [];
  private releaseScheduled = false;

  /** One generation's use of the barrier; `close()` it when the generation ends, however it ends. */
  turn(): DecodeTurn {
    return new DecodeTurn(this);
  }

  /** @internal the start of a decode; resolves when the decode may be asked for. */
  acquire(): Promise<void> | undefined {
    if (this.outstanding === 0 && this.waiting.length === 0) {
      this.outstanding++;
      return undefined;
    }
    return new Promise((resolve) => {
      this.waiting.push(() => {
        this.outstanding++;
        resolve();
      });
      this.releaseWhenDone();
    });
  }

  /** @internal the decode's token is in (or the generation gave up on it). */
  finish(): void {
    this.outstanding--;
    this.releaseWhenDone();
  }

  private releaseWhenDone(): void {
    if (this.outstanding > 0 || this.waiting.length === 0 || this.releaseScheduled) return;
    this.releaseScheduled = true;
    setImmediate(() => {
      this.releaseScheduled = false;
      const released = this.waiting;
      this.waiting = [];
      for (const go of released) go();
    });
  }
}

export class DecodeTurn {
  private holding = false;

  constructor(private readonly barrier: DecodeStepBarrier) {}

  /** Await (when it returns a promise) before asking for a decode. */
  beforeDecode(): Promise<void> | undefined {
    const wait = this.barrier.acquire();
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
    if (!this.holding) return;
    this.holding = false;
    this.barrier.finish();
  }

  /** The generation ends; a decode it still held (an abort, an error, the end of the text) is let go. */
  close(): void {
    this.afterDecode();
  }
}
