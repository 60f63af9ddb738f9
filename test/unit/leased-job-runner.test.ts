import { describe, expect, it } from "vitest";
import {
  LeasedJobRunner,
  type LeasedJobRunnerOptions,
  type LeasedJobStore,
} from "../../src/queue/leased-job-runner.js";
import { waitFor } from "../helpers/wait-for.js";

interface Job {
  id: string;
}

/** Jobs in memory with leases on a clock the test moves. */
class MemoryJobs implements LeasedJobStore<Job> {
  readonly leases = new Map<string, { owner: string | null; until: number | null }>();
  readonly done = new Set<string>();
  readonly runs: string[] = [];

  constructor(ids: readonly string[]) {
    for (const id of ids) this.leases.set(id, { owner: null, until: null });
  }

  async claim(owner: string, now: number, leaseMs: number, max: number): Promise<Job[]> {
    const out: Job[] = [];
    for (const [id, lease] of this.leases) {
      if (out.length >= max) break;
      if (this.done.has(id) || (lease.until !== null && lease.until >= now)) continue;
      this.leases.set(id, { owner, until: now + leaseMs });
      out.push({ id });
    }
    return out;
  }

  async renew(owner: string, jobs: readonly Job[], until: number): Promise<void> {
    for (const job of jobs) {
      const lease = this.leases.get(job.id);
      if (lease?.owner === owner) lease.until = until;
    }
  }

  async release(owner: string, jobs: readonly Job[], retryAt: number | null): Promise<void> {
    for (const job of jobs) {
      const lease = this.leases.get(job.id);
      if (lease?.owner === owner) this.leases.set(job.id, { owner: null, until: retryAt });
    }
  }

  /** The write that counts: once per job. */
  complete(id: string): void {
    this.runs.push(id);
    this.done.add(id);
  }
}

const silent = { warn() {} };

function runner(
  jobs: MemoryJobs,
  clock: { now: number },
  run: (job: Job, signal: AbortSignal) => Promise<void>,
  extra: Partial<LeasedJobRunnerOptions<Job>> = {},
) {
  return new LeasedJobRunner<Job>({
    name: "test runner",
    store: jobs,
    keyOf: (job) => job.id,
    run,
    concurrency: 2,
    leaseMs: 1_000,
    pollIntervalMs: 10,
    now: () => clock.now,
    logger: silent,
    ...extra,
  });
}

/** Resolves when the signal aborts. */
const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));

describe("the leased job runner", () => {
  it("runs every job once; a job whose worker vanished is taken by another once its lease lapses", async () => {
    const jobs = new MemoryJobs(["a", "b", "c"]);
    const clock = { now: 0 };
    // The first runner takes two jobs and never finishes them; it is stopped below without giving
    // them back (a job that ends releases nothing by itself), as a worker that died would leave them.
    const stuck = runner(jobs, clock, (_job, signal) => aborted(signal));
    stuck.start();
    await waitFor("the first runner's claims", () => stuck.busy === 2);
    const taken = [...jobs.leases].filter(([, l]) => l.owner === stuck.owner).map(([id]) => id);
    const other = runner(jobs, clock, async (job) => jobs.complete(job.id));
    other.start();
    await waitFor("the free job", () => jobs.done.size === 1);
    expect([...jobs.done]).not.toContain(taken[0]);
    // Its leases lapse (it stops renewing them, and time passes): the other runner takes those jobs.
    await stuck.stop(0);
    expect(taken.map((id) => jobs.leases.get(id)?.owner)).toEqual([stuck.owner, stuck.owner]);
    clock.now = 2_000;
    await waitFor("every job", () => jobs.done.size === 3);
    expect(jobs.runs.sort()).toEqual(["a", "b", "c"]);
    await other.stop(0);
  });

  it("does its user's side work before each claim, beats with no jobs, holds claims back, and drains on stop", async () => {
    const jobs = new MemoryJobs(["a"]);
    const clock = { now: 0 };
    const calls = { rounds: 0, beats: 0, drained: false };
    let mayClaim = false;
    let sideWork: (() => void) | undefined;
    const sideDone = new Promise<void>((resolve) => {
      sideWork = resolve;
    });
    const r = runner(jobs, clock, async (job) => jobs.complete(job.id), {
      leaseMs: 300,
      mayClaim: () => mayClaim,
      beforeClaim: async () => {
        calls.rounds++;
        return false;
      },
      onHeartbeat: async () => {
        calls.beats++;
      },
      drain: async () => {
        await sideDone;
        calls.drained = true;
      },
    });
    r.start();
    await waitFor("rounds and beats without jobs", () => calls.rounds > 2 && calls.beats > 0);
    expect(jobs.done.size).toBe(0);
    mayClaim = true;
    await waitFor("the job", () => jobs.done.size === 1);
    const stopped = r.stop(0);
    expect(r.isStopping).toBe(true);
    // Stop waits for the side work.
    await Promise.resolve();
    expect(calls.drained).toBe(false);
    sideWork?.();
    await stopped;
    expect(calls.drained).toBe(true);
    expect(r.isStopping).toBe(false);
  });

  it("aborts running jobs at stop once the grace is over, and after a renewal those its user says should end", async () => {
    const jobs = new MemoryJobs(["keep", "end"]);
    const clock = { now: 0 };
    const endings: string[] = [];
    const r = runner(
      jobs,
      clock,
      async (job, signal) => {
        await aborted(signal);
        endings.push(`${job.id}: ${(signal.reason as Error).message}`);
        // The ended job is answered (never claimed again); the one stopped goes back.
        if (job.id === "end") jobs.complete(job.id);
        else await jobs.release(r.owner, [job], null);
      },
      {
        leaseMs: 300,
        afterRenew: async (running) => {
          for (const { job, abort } of running) if (job.id === "end") abort(new Error("ended"));
        },
      },
    );
    r.start();
    await waitFor("the renewal's abort", () => endings.length === 1);
    expect(endings).toEqual(["end: ended"]);
    await r.stop(0);
    expect(endings).toEqual(["end: ended", "keep: test runner stopping"]);
    expect(jobs.leases.get("keep")).toEqual({ owner: null, until: null });
  });
});
