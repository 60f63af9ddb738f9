/**
 * Requests and tokens sent to a deployment in the current minute, against its rpm / tpm caps.
 * A deployment at its cap is passed over while others have room, instead of collecting 429s.
 * Batch work may fill only a share of each cap, so it cannot take the whole minute from
 * interactive traffic.
 */
export class RateWindow {
  private minute = -1;
  private requests = 0;
  private tokens = 0;

  constructor(
    private readonly caps: { rpm?: number; tpm?: number },
    private readonly now: () => number,
  ) {}

  /** `share`: the part of each cap this request may fill (1 for interactive requests). */
  allows(tokens: number, share = 1): boolean {
    this.roll();
    const { rpm, tpm } = this.caps;
    // At least one request a minute, whatever the share, so a small cap still serves batch work.
    if (rpm !== undefined && this.requests + 1 > Math.max(1, Math.floor(rpm * share))) return false;
    // One request larger than the whole cap still goes when the minute is fresh.
    if (tpm !== undefined && this.tokens > 0 && this.tokens + tokens > tpm * share) return false;
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
