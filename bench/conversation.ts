import { foreignPercent, snapshot } from "./cpu-monitor.js";
import {
  type BenchSession,
  type BenchTarget,
  type EngineSettings,
  fmt,
  formatTable,
  median,
  progress,
  type RequestResult,
} from "./harness.js";
import { conversationRequests } from "./prompts.js";

/** Tokens generated per turn: this measurement is about the prompt, not the decode. */
const TURN_TOKENS = 16;

export interface ConversationResult {
  target: string;
  streams: number;
  threads: number;
  turns: number;
  /** [rep][turn] */
  cached: RequestResult[][];
  uncached: RequestResult[][];
  /** Share of the machine other processes used during each conversation. */
  foreignCpuPercent: number[];
}

/**
 * Multi-turn prompt caching: a conversation whose every request re-sends the whole history, once as
 * a client would (the history is a growing prefix, which a prompt cache can reuse) and once with a
 * per-request nonce at the very start (nothing reusable), on the same session.
 */
export async function runConversations(
  targets: BenchTarget[],
  settings: EngineSettings,
  opts: { turns: number; reps: number; quiet: (session: BenchSession) => Promise<void> },
): Promise<ConversationResult[]> {
  const results: ConversationResult[] = [];
  for (const target of targets) {
    progress(`multi-turn: opening ${target.name} (streams=${settings.streams} threads=${settings.threads})`);
    const session = await target.open(settings);
    try {
      await playConversation(session, `${settings.modelLabel}/conversation/warmup`, 1, true);
      const result: ConversationResult = {
        target: target.name,
        streams: settings.streams,
        threads: settings.threads,
        turns: opts.turns,
        cached: [],
        uncached: [],
        foreignCpuPercent: [],
      };
      for (let rep = 0; rep < opts.reps; rep++) {
        const key = `${settings.modelLabel}/conversation/rep${rep}`;
        for (const shared of rep % 2 === 0 ? [true, false] : [false, true]) {
          await opts.quiet(session);
          const before = snapshot(session.pids());
          const turns = await playConversation(session, key, opts.turns, shared);
          result.foreignCpuPercent.push(foreignPercent(before, snapshot(session.pids())));
          (shared ? result.cached : result.uncached).push(turns);
          progress(
            `multi-turn rep ${rep + 1}/${opts.reps} ${shared ? "with" : "without"} cache: TTFT per turn ` +
              turns.map((t) => fmt(t.ttftMs, 0)).join(", "),
          );
        }
      }
      results.push(result);
    } finally {
      await session.close();
    }
  }
  return results;
}

async function playConversation(
  session: BenchSession,
  key: string,
  turns: number,
  shareHistory: boolean,
): Promise<RequestResult[]> {
  const out: RequestResult[] = [];
  for (const messages of conversationRequests(key, turns, shareHistory)) {
    const [result] = await session.run([{ messages, maxTokens: TURN_TOKENS, temperature: 0.8, seed: 7 }]);
    out.push(result as RequestResult);
  }
  return out;
}

export function formatConversation(c: ConversationResult): string {
  const rows: string[][] = [];
  const at = (runs: RequestResult[][], turn: number) => runs.map((r) => r[turn] as RequestResult);
  for (let turn = 0; turn < c.turns; turn++) {
    const cached = at(c.cached, turn);
    const uncached = at(c.uncached, turn);
    const ttftCached = median(cached.map((r) => r.ttftMs));
    const ttftUncached = median(uncached.map((r) => r.ttftMs));
    rows.push([
      String(turn + 1),
      fmt(median(cached.map((r) => r.promptTokens)), 0),
      fmt(ttftCached),
      fmt(median(cached.map((r) => r.cachedTokens ?? Number.NaN)), 0),
      fmt(ttftUncached),
      fmt(median(uncached.map((r) => r.cachedTokens ?? Number.NaN)), 0),
      fmt(ttftUncached / ttftCached, 2),
    ]);
  }
  // Turn 1 has nothing to reuse in either variant; the cache shows from turn 2 on.
  const later = (runs: RequestResult[][]) => runs.flatMap((r) => r.slice(1)).map((r) => r.ttftMs);
  const cachedMedian = median(later(c.cached));
  const uncachedMedian = median(later(c.uncached));
  return [
    `multi-turn prompt cache, ${c.target} (streams=${c.streams} threads=${c.threads}, ${c.turns} turns, ` +
      `${TURN_TOKENS} tokens per reply, ${c.cached.length} conversations each; medians per turn):`,
    formatTable(
      [
        "turn",
        "prompt tok",
        "TTFT ms cached",
        "cached_tokens",
        "TTFT ms no cache",
        "cached_tokens (no cache)",
        "speed-up",
      ],
      rows,
    ),
    `summary multi-turn: TTFT median over turns 2-${c.turns}: with prompt cache ${fmt(cachedMedian)} ms, ` +
      `without ${fmt(uncachedMedian)} ms, ratio ${fmt(uncachedMedian / cachedMedian, 2)}x ` +
      `(other processes: median ${fmt(median(c.foreignCpuPercent), 0)}% CPU)`,
  ].join("\n");
}
