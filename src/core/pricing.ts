import type { UsageCounts } from "./generation.js";

/** A deployment's prices, in USD per million tokens. */
export interface ModelPricing {
  inputPerMillionUsd: number;
  outputPerMillionUsd: number;
  cachedInputPerMillionUsd: number;
}

/** What a request cost; free when the deployment has no pricing. */
export function costUsd(pricing: ModelPricing | undefined, usage: UsageCounts): number {
  if (!pricing) return 0;
  const uncached = Math.max(0, usage.promptTokens - usage.cachedTokens);
  return (
    (uncached * pricing.inputPerMillionUsd +
      usage.cachedTokens * pricing.cachedInputPerMillionUsd +
      usage.completionTokens * pricing.outputPerMillionUsd) /
    1e6
  );
}
