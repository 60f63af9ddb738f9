import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/principal.js";
import { LimitEnforcer } from "../../src/limits/limit-enforcer.js";
import { MemoryLimitStore } from "../../src/limits/memory-limit-store.js";
import { NO_LIMITS, type UsageRepository } from "../../src/storage/repositories/types.js";

const principal: Principal = {
  projectId: "proj_budget",
  keyId: "key_budget",
  role: "member",
  allowedModels: null,
  keyLimits: { ...NO_LIMITS, monthlyTokenBudget: 100 },
  projectLimits: NO_LIMITS,
};

/** An enforcer on a clock the test sets; storage reports nothing spent and says which months it was asked. */
function enforcerAt(start: string) {
  let now = Date.parse(start);
  const asked: string[] = [];
  const usage = {
    monthTotals: async (_scope: unknown, month: string) => {
      asked.push(month);
      return { tokens: 0, costUsd: 0 };
    },
  } as unknown as UsageRepository;
  const enforcer = new LimitEnforcer(
    new MemoryLimitStore(() => now, { sweepIntervalMs: 0 }),
    usage,
    () => now,
  );
  return { enforcer, asked, at: (time: string) => (now = Date.parse(time)) };
}

describe("monthly budgets count per UTC month", () => {
  it("refuses once the month's budget is spent, and starts afresh at the first instant of the next month", async () => {
    const { enforcer, asked, at } = enforcerAt("2026-11-30T23:59:59.000Z");
    const spent = await enforcer.reserve(principal, 100, "lease_1");
    await spent.settle({ tokens: 100, costUsd: 0 });
    await expect(enforcer.reserve(principal, 1, "lease_2")).rejects.toMatchObject({ kind: "quota_exceeded" });
    at("2026-11-30T23:59:59.999Z");
    await expect(enforcer.reserve(principal, 1, "lease_3")).rejects.toMatchObject({ kind: "quota_exceeded" });
    at("2026-12-01T00:00:00.000Z");
    const next = await enforcer.reserve(principal, 1, "lease_4");
    await next.settle({ tokens: 1, costUsd: 0 });
    expect(asked).toEqual(["2026-11", "2026-12"]);
  });

  it("counts in the month the clock says, also when the clock steps back into an earlier one", async () => {
    const { enforcer, asked, at } = enforcerAt("2027-01-01T00:00:00.000Z");
    const january = await enforcer.reserve(principal, 100, "lease_1");
    await january.settle({ tokens: 100, costUsd: 0 });
    await expect(enforcer.reserve(principal, 1, "lease_2")).rejects.toMatchObject({ kind: "quota_exceeded" });
    // A clock stepped back into December counts in December, whose total storage is asked for.
    at("2026-12-31T23:59:59.999Z");
    const december = await enforcer.reserve(principal, 100, "lease_3");
    await december.settle({ tokens: 100, costUsd: 0 });
    at("2027-01-15T12:00:00.000Z");
    await enforcer.reserve(principal, 1, "lease_4");
    expect(asked).toEqual(["2027-01", "2026-12", "2027-01"]);
  });
});
