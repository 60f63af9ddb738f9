/**
 * A deployment's health and traffic as every instance of the server should see it: its circuit
 * (closed, open, half-open with one probe out) and its rpm / tpm caps. One implementation keeps it
 * in this process (the embedded default); another keeps it in Redis, so that instances behind a
 * load balancer open, probe and close one circuit together and share one cap.
 */

export type CircuitState = "closed" | "open" | "half_open";

export interface DeploymentStateSettings {
  /** Failures in a row that open the circuit. */
  breakerFailures: number;
  /** How long an open circuit refuses before it lets one probe through. */
  breakerCooldownMs: number;
  /**
   * How long a probe holds the half-open circuit before another may go: the longest an attempt
   * can take to start an answer (the model's deadline), so an instance that died mid-probe does not
   * keep the circuit half-open forever. A probe may outlive it (an answer taken whole is committed
   * only at its end); then the next probe goes, and the late one's end leaves that one's hold alone.
   */
  probeTtlMs: number;
  /** Requests per minute (a bucket of this many, refilled evenly over a minute). */
  rpm?: number;
  /** Tokens per minute, estimated up front and settled with what was used. */
  tpm?: number;
}

/** What `admit` decided. Outcomes are reported with the admission they belong to. */
export type Admission =
  | {
      admitted: true;
      /** This request is the half-open circuit's one probe. */
      probe: boolean;
      /**
       * The probe's hold on the half-open circuit (until when it holds it, as the store wrote it).
       * A probe that outlived its hold may end after the next probe took the circuit: its end then
       * frees only its own hold, never the next probe's.
       */
      probeHold?: string;
      /** Tokens taken from the tpm cap (0 without one). */
      tokens: number;
      /** Failures in a row counted when it was admitted: a success then has something to reset. */
      failuresBefore: number;
      /** Which store admitted it (the shared one, or this process' own when the shared one failed). */
      via: "shared" | "local";
    }
  | { admitted: false; reason: "open" | "capped" };

export type Admitted = Extract<Admission, { admitted: true }>;

export interface DeploymentSnapshot {
  circuit: CircuitState;
  consecutiveFailures: number;
}

/**
 * One deployment's state. Outcome calls never throw: a store that cannot record one drops it. A
 * failure is awaited before the request moves on, so that the next attempt (on any instance) sees it.
 */
export interface DeploymentState {
  /**
   * May a request of `tokens` (estimated) go now? If so it is counted against the caps at once and,
   * when the circuit is half-open, it becomes the probe. Atomic across instances in a shared store
   * (which may answer from a picture under a second old for a healthy deployment without caps).
   * `share` (0–1] of the rpm / tpm caps this request may use: below 1 (batch lines) it is admitted
   * only while more than the rest of each cap is left, so online traffic always finds that much.
   */
  admit(tokens: number, share?: number): Promise<Admission>;
  /** The upstream answered: the circuit closes and the failure streak ends. */
  succeeded(admission: Admitted): void;
  /** The upstream failed: one more in the streak; enough, or a failed probe, opens the circuit. */
  failed(admission: Admitted): Promise<void>;
  /** The attempt said nothing about the upstream's health (the caller left, or its request was bad). */
  released(admission: Admitted): void;
  /** The request is over: tokens reserved beyond what it used go back to the tpm cap. */
  settle(admission: Admitted, usedTokens: number): void;
  /** The state as last known here (a shared store refreshes it as it goes). */
  snapshot(): DeploymentSnapshot;
  /**
   * The state now, asked of the shared store where there is one (the CLI's `models list`);
   * undefined when that store cannot answer.
   */
  read(): Promise<DeploymentSnapshot | undefined>;
}

export interface DeploymentStateStore {
  /** Whether instances share this store (Redis) or each keeps its own (memory). */
  readonly shared: boolean;
  /** The state of deployment `name` of public model `model`; the same names share one state. */
  forDeployment(model: string, name: string, settings: DeploymentStateSettings): DeploymentState;
  close(): Promise<void>;
}

/** One refill-evenly bucket of a per-minute cap: `level` units left at time `at`. */
export interface CapBucket {
  level: number;
  at: number;
}

export const CAP_WINDOW_MS = 60_000;

/** The bucket's level at `now`: refilled by cap per minute since `at`, never above the cap. */
export function levelAt(bucket: CapBucket | undefined, cap: number, now: number): number {
  if (!bucket) return cap;
  const refilled = bucket.level + (Math.max(0, now - bucket.at) * cap) / CAP_WINDOW_MS;
  return Math.min(refilled, cap);
}

/**
 * Whether `tokens` fit under a tpm cap whose bucket is at `level`: they do when that many are
 * left, and a request larger than the whole cap still goes when the bucket is full (then it owes).
 */
export function tokensFit(level: number, tokens: number, cap: number): boolean {
  return level >= tokens || level >= cap;
}

/** What a request with `share` of a cap must leave in its bucket (at least one request a minute still goes). */
export function heldBack(cap: number, share: number, perRequest = false): number {
  const held = cap * (1 - share);
  return perRequest ? Math.min(held, cap - 1) : held;
}
