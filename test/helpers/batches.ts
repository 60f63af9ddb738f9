import type OpenAI from "openai";
import { toFile } from "openai";
import { TINY_MODEL } from "./test-server.js";

/** A chat batch line for the tiny model. */
export function chatLine(customId: string, maxTokens = 4, extra: Record<string, unknown> = {}) {
  return {
    custom_id: customId,
    method: "POST",
    url: "/v1/chat/completions",
    body: {
      model: TINY_MODEL,
      messages: [{ role: "user", content: `Say ${customId}` }],
      max_tokens: maxTokens,
      ...extra,
    },
  };
}

export function jsonl(lines: readonly unknown[]): string {
  return `${lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n")}\n`;
}

export async function uploadBatchFile(client: OpenAI, text: string): Promise<string> {
  const file = await client.files.create({
    file: await toFile(Buffer.from(text), "input.jsonl"),
    purpose: "batch",
  });
  return file.id;
}

/** Polls until the batch reaches one of `statuses`. */
export async function waitForBatch(
  client: OpenAI,
  batchId: string,
  statuses: readonly string[] = ["completed", "failed", "expired", "cancelled"],
  timeoutMs = 120_000,
): Promise<OpenAI.Batches.Batch> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const batch = await client.batches.retrieve(batchId);
    if (statuses.includes(batch.status)) return batch;
    if (Date.now() > deadline)
      throw new Error(`batch ${batchId} still ${batch.status} (${JSON.stringify(batch.request_counts)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls closely until the batch ends, returning every status seen (in order, repeats dropped) and the end. */
export async function watchBatch(
  client: OpenAI,
  batchId: string,
  timeoutMs = 120_000,
): Promise<{ statuses: string[]; batch: OpenAI.Batches.Batch }> {
  const statuses: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const batch = await client.batches.retrieve(batchId);
    if (statuses.at(-1) !== batch.status) statuses.push(batch.status);
    if (["completed", "failed", "expired", "cancelled"].includes(batch.status)) return { statuses, batch };
    if (Date.now() > deadline) throw new Error(`batch ${batchId} still ${batch.status}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The order statuses may be seen in (any may be missed between two polls). */
export const STATUS_ORDER = ["validating", "in_progress", "finalizing", "completed"];

// biome-ignore lint/suspicious/noExplicitAny: output lines are probed field by field
export type ResultLine = any;

export async function downloadLines(
  client: OpenAI,
  fileId: string | null | undefined,
): Promise<ResultLine[]> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}
