/**
 * A model's deadline for beginning an answer: when it passes, `expire` cuts the attempts. An
 * answer taken whole begins before it is committed: the clock stops once it began (its length is
 * the request's own affair, as a stream's is) and starts again, for what is left, if that attempt
 * fails and another may be tried. A fallback model's clock stops and restarts the calling model's
 * with its own, so the caller's deadline does not cut an answer its fallback began.
 */
export class DeadlineClock {
  private readonly deadlineAt: number;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    deadlineMs: number,
    private readonly now: () => number,
    private readonly expire: () => void,
    private readonly outer: DeadlineClock | undefined,
  ) {
    this.deadlineAt = now() + deadlineMs;
    this.timer = setTimeout(expire, deadlineMs);
  }

  /** Whether the deadline passed by the router's own clock. */
  passed(extraMs = 0): boolean {
    return this.now() + extraMs >= this.deadlineAt;
  }

  /** An answer began (taken whole, not yet committed): the deadline no longer counts for it. */
  readonly stop = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.outer?.stop();
  };

  /** The attempt failed: the next one has what is left of the deadline. */
  resume(): void {
    this.timer ??= setTimeout(this.expire, Math.max(0, this.deadlineAt - this.now()));
    this.outer?.resume();
  }

  /** The route is over: committed, or given up. */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
