/**
 * Requests and tokens sent to a deployment in the current minute, against its rpm / tpm caps.
 * A deployment at its cap is passed over while others have room, instead of collecting 429s.
 */
export class RateWindow {
  private minute = -1;
  private requests = 0;
  private tokens = 0;

  constructor(
    private readonly caps: { rpm?: number; tpm?: number },
    private readonly now: () => number,
  ) {}

  allows(tokens: number): boolean {
    this.roll();
    if (this.caps.rpm !== undefined && this.requests + 1 > this.caps.rpm) return false;
    // One request larger than the whole cap still goes when the minute is fresh.
    if (this.caps.tpm !== undefined && this.tokens > 0 && this.tokens + tokens > this.caps.tpm) return false;
    return true;
  }

  record(tokens: number): void {
    this.roll();
    this.requests++;
    this.tokens += tokens;
  }

  private roll(): void {
    const minute = Math.floor(this.now() / 60_000);
    if (minute === this.minute) return;
    this.minute = minute;
    this.requests = 0;
    this.tokens = 0;
  }
}
