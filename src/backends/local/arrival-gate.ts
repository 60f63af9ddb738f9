/**
 * Lets requests that arrive together reach the engine together.
 *
 * Engines batch the prompts they have when their loop comes round: llama-server takes every task
 * queued when it starts a step, and then decodes for as long as the prompt takes. Requests that
 * reach Switchboard at the same moment leave it a few milliseconds apart (each is rendered and
 * tokenized, through the engine process, on its own), and the first one's prompt then runs
 * alone while the others wait for the whole of it: measured with four concurrent requests, two
 * prompts went in one step and two ~340 ms later; sent together, all four share one step.
 *
 * So a prepared request waits while other requests for the model are still being prepared, and
 * all that waited go on together when the last of them is ready, or after `maxWaitMs` from the
 * first one's wait, whichever comes first. A request that is alone never waits.
 */
export class ArrivalGate {
  private inPreparation = 0;
  private waiting: (() => void)[] = [];
  private deadline: NodeJS.Timeout | undefined;

  constructor(private readonly maxWaitMs: number) {}

  /** Runs a request's preparation (rendering, tokenizing) counted as such. */
  async preparing<T>(work: () => Promise<T>): Promise<T> {
    this.inPreparation++;
    try {
      return await work();
    } finally {
      this.inPreparation--;
      if (this.inPreparation === 0) this.release();
    }
  }

  /** Before a prepared request goes to the engine; a promise to await when others are on the way. */
  beforeSubmit(): Promise<void> | undefined {
    if (this.inPreparation === 0) return undefined;
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.deadline ??= setTimeout(() => this.release(), this.maxWaitMs);
    });
  }

  private release(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
    const released = this.waiting;
    this.waiting = [];
    for (const go of released) go();
  }
}
