import type { Principal } from "../auth/principal.js";
import type { CostEstimate, UsageCounts } from "../core/generation.js";
import { randomId } from "../core/ids.js";
import { costUsd, type ModelPricing } from "../core/pricing.js";
import type { LimitEnforcer, Reservation } from "../limits/limit-enforcer.js";
import type { UsageRecorder } from "./usage-recorder.js";

export interface Metered {
  /** x-ratelimit-* hints for the client. */
  hints: Readonly<Record<string, string>>;
  /** Settles limits and records usage; call exactly once when the request ends, success or not. */
  finish(outcome: { status: number; usage?: UsageCounts; latencyMs: number }): Promise<void>;
}

/**
 * Limits and usage for generation and embedding requests: reserves the prepared request's worst-case tokens
 * against the caller's limits, and afterwards settles with what was really used and records it.
 */
export class Metering {
  constructor(
    private readonly enforcer: LimitEnforcer | undefined,
    private readonly recorder: Pick<UsageRecorder, "record"> | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  async start(
    principal: Principal,
    deployment: { id: string; pricing?: ModelPricing },
    /** A prepared generation or embedding: what it may cost, and the model it was asked of. */
    prepared: { readonly estimate: CostEstimate; readonly request: { readonly model: string } },
    endpoint: string,
  ): Promise<Metered> {
    const { promptTokens, maxTokensPerChoice, choices } = prepared.estimate;
    const estimated = promptTokens + maxTokensPerChoice * choices;
    // The concurrency lease is minted here, never taken from the client (its x-request-id): two
    // requests sending one id would otherwise share one place.
    const reservation: Reservation | undefined = this.enforcer
      ? await this.enforcer.reserve(principal, estimated, `lease_${randomId()}`)
      : undefined;
    let done = false;
    return {
      hints: reservation?.headers ?? {},
      finish: async ({ status, usage, latencyMs }) => {
        if (done) return;
        done = true;
        // A 429 at this point (the model's queue is full) turned the request away before any work:
        // it is not charged, even though the prepared request already counted its prompt.
        const used =
          status === 429 || !usage ? { promptTokens: 0, completionTokens: 0, cachedTokens: 0 } : usage;
        const cost = costUsd(deployment.pricing, used);
        await reservation?.settle({ tokens: used.promptTokens + used.completionTokens, costUsd: cost });
        this.recorder?.record({
          projectId: principal.projectId,
          keyId: principal.keyId,
          model: prepared.request.model,
          deployment: deployment.id,
          endpoint,
          promptTokens: used.promptTokens,
          completionTokens: used.completionTokens,
          cachedTokens: used.cachedTokens,
          costUsd: cost,
          latencyMs,
          status,
          createdAt: this.now(),
        });
      },
    };
  }
}
