export type CircuitState = "closed" | "open" | "half_open";

export interface BreakerSettings {
  /** Failures in a row that open the circuit. */
  failures: number;
  /** How long an open circuit refuses before it lets one probe through. */
  cooldownMs: number;
}

/**
 * One deployment's circuit: after enough failures in a row it stops taking traffic, so requests
 * go to healthy deployments at once instead of each waiting out the broken one. After the
 * cooldown a single probe is let through; its success closes the circuit, its failure re-opens it.
 */
export class CircuitBreaker {
  private consecutiveFailures = 0;
  private openedAt: number | undefined;
  private probing = false;

  constructor(
    private readonly settings: BreakerSettings,
    private readonly now: () => number,
  ) {}

  get state(): CircuitState {
    if (this.openedAt === undefined) return "closed";
    return this.now() - this.openedAt >= this.settings.cooldownMs ? "half_open" : "open";
  }

  get failures(): number {
    return this.consecutiveFailures;
  }

  /** Whether a request may go now; in half-open, only one at a time (the probe). */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === "closed") return true;
    if (state === "open" || this.probing) return false;
    this.probing = true;
    return true;
  }

  succeeded(): void {
    this.consecutiveFailures = 0;
    this.openedAt = undefined;
    this.probing = false;
  }

  failed(): void {
    this.consecutiveFailures++;
    this.probing = false;
    if (this.openedAt !== undefined || this.consecutiveFailures >= this.settings.failures) {
      this.openedAt = this.now();
    }
  }

  /** The request said nothing about the deployment's health (the caller left, or its request was bad). */
  released(): void {
    this.probing = false;
  }
}
