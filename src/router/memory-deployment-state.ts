import {
  type Admission,
  type Admitted,
  type CapBucket,
  type DeploymentSnapshot,
  type DeploymentState,
  type DeploymentStateSettings,
  type DeploymentStateStore,
  heldBack,
  levelAt,
  tokensFit,
} from "./deployment-state.js";

/**
 * A deployment's circuit and caps in this process. After enough failures in a row the circuit
 * opens: requests go to healthy deployments at once instead of each waiting out the broken one.
 * After the cooldown one probe is let through; its success closes the circuit, its failure
 * re-opens it. The caps are buckets refilled evenly over a minute, so a deployment at its cap is
 * passed over while others have room instead of collecting 429s.
 *
 * The Redis store runs the same rules in its scripts; the two must stay alike.
 */
export class MemoryDeploymentState implements DeploymentState {
  private failures = 0;
  private openedAt: number | undefined;
  /** While a probe is out: until when it holds the half-open circuit. */
  private probeUntil: number | undefined;
  private requests: CapBucket | undefined;
  private tokens: CapBucket | undefined;

  constructor(
    private readonly settings: DeploymentStateSettings,
    private readonly now: () => number,
    private readonly via: "shared" | "local" = "local",
  ) {}

  /** Synchronous: the Redis store falls back on it when Redis cannot answer. */
  admitNow(tokens: number, share = 1): Admission {
    const now = this.now();
    let probe = false;
    if (this.openedAt !== undefined) {
      if (now - this.openedAt < this.settings.breakerCooldownMs) return { admitted: false, reason: "open" };
      if (this.probeUntil !== undefined && this.probeUntil > now) return { admitted: false, reason: "open" };
      probe = true;
    }
    const { rpm, tpm } = this.settings;
    const requestLevel = rpm === undefined ? 0 : levelAt(this.requests, rpm, now);
    if (rpm !== undefined && requestLevel - 1 < heldBack(rpm, share, true))
      return { admitted: false, reason: "capped" };
    const tokenLevel = tpm === undefined ? 0 : levelAt(this.tokens, tpm, now);
    const tokensHeld = tpm === undefined ? 0 : heldBack(tpm, share);
    if (tpm !== undefined && !tokensFit(tokenLevel - tokensHeld, tokens, tpm - tokensHeld))
      return { admitted: false, reason: "capped" };
    if (rpm !== undefined) this.requests = { level: requestLevel - 1, at: now };
    if (tpm !== undefined) this.tokens = { level: tokenLevel - tokens, at: now };
    if (probe) this.probeUntil = now + this.settings.probeTtlMs;
    return {
      admitted: true,
      probe,
      ...(probe && { probeHold: String(this.probeUntil) }),
      tokens: tpm === undefined ? 0 : tokens,
      failuresBefore: this.failures,
      via: this.via,
    };
  }

  admit(tokens: number, share = 1): Promise<Admission> {
    return Promise.resolve(this.admitNow(tokens, share));
  }

  succeeded(_admission: Admitted): void {
    this.failures = 0;
    this.openedAt = undefined;
    this.probeUntil = undefined;
  }

  failed(admission: Admitted): Promise<void> {
    this.failNow(admission);
    return Promise.resolve();
  }

  failNow(admission: Admitted): void {
    this.failures++;
    this.endProbe(admission);
    // A failure while open (a request let in before it opened) starts the cooldown again.
    if (this.openedAt !== undefined || this.failures >= this.settings.breakerFailures) {
      this.openedAt = this.now();
    }
  }

  released(admission: Admitted): void {
    this.endProbe(admission);
  }

  /** A probe's end frees the half-open circuit, if the hold is still its own. */
  private endProbe(admission: Admitted): void {
    if (admission.probe && admission.probeHold === String(this.probeUntil)) this.probeUntil = undefined;
  }

  settle(admission: Admitted, usedTokens: number): void {
    const tpm = this.settings.tpm;
    if (tpm === undefined || admission.tokens === 0) return;
    const unused = admission.tokens - usedTokens;
    if (unused === 0) return;
    const now = this.now();
    this.tokens = { level: Math.min(tpm, levelAt(this.tokens, tpm, now) + unused), at: now };
  }

  snapshot(): DeploymentSnapshot {
    if (this.openedAt === undefined) return { circuit: "closed", consecutiveFailures: this.failures };
    const open = this.now() - this.openedAt < this.settings.breakerCooldownMs;
    return { circuit: open ? "open" : "half_open", consecutiveFailures: this.failures };
  }

  read(): Promise<DeploymentSnapshot | undefined> {
    return Promise.resolve(this.snapshot());
  }
}

/** Every deployment's state in this process: the embedded default. */
export class MemoryDeploymentStateStore implements DeploymentStateStore {
  readonly shared = false;
  constructor(private readonly now: () => number = Date.now) {}

  forDeployment(_model: string, _name: string, settings: DeploymentStateSettings): DeploymentState {
    return new MemoryDeploymentState(settings, this.now);
  }

  async close(): Promise<void> {}
}
