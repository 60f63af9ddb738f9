import type { BenchMessage } from "./harness.js";

/**
 * Deterministic prompts. Every request gets different text from its first word on, so no engine
 * can serve one request's prompt from another's cache (llama-server and Switchboard both reuse
 * matching prefixes). The same key gives the same prompt to every target, so rows compare alike.
 */

const WORDS = (
  "the of and to in is it you that was for on are with as they be at one have this from or had by not " +
  "word but what some we can out other were all there when up use your how said each she which do their " +
  "time if will way about many then them write would like so these her long make thing see him two has look " +
  "more day could go come did number sound no most people my over know water than call first who may down " +
  "side been now find any new work part take get place made live where after back little only round man year " +
  "came show every good me give our under name very through just form sentence great think say help low line " +
  "turn cause much mean before move right boy old too same tell does set three want air well also play small " +
  "end put home read hand port large spell add even land here must big high such follow act why ask men change " +
  "went light kind off need house picture try us again animal point mother world near build self earth father " +
  "question today tomorrow data code function value test example server request response token text message"
).split(" ");

/** mulberry32: a tiny seeded PRNG, enough to pick words reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stable 32-bit hash of a string key, to seed prompts by name ("cell:1x1/rep:2/stream:0"). */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export function words(random: () => number, count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(WORDS[Math.floor(random() * WORDS.length)] as string);
  return out.join(" ");
}

/**
 * A system + user prompt of about 64 tokens under ChatML with the generated models' vocab
 * (each word above is one token; ChatML adds about 10).
 */
export function singlePrompt(key: string, userWords = 36): BenchMessage[] {
  const random = prng(hashKey(key));
  return [
    { role: "system", content: `${capitalize(words(random, 10))}. You are a helpful assistant.` },
    { role: "user", content: `${capitalize(words(random, userWords))}?` },
  ];
}

/**
 * The requests of one multi-turn conversation: request k re-sends the system message and every
 * earlier turn (fixed assistant replies, so both variants have the same lengths). With
 * `shareHistory` false each request starts with its own nonce, so no prefix can be reused.
 */
export function conversationRequests(key: string, turns: number, shareHistory: boolean): BenchMessage[][] {
  const random = prng(hashKey(key));
  const system = `${capitalize(words(random, 12))}. You are a helpful assistant that answers briefly.`;
  const turnsText: { user: string; assistant: string }[] = [];
  for (let t = 0; t < turns; t++) {
    turnsText.push({
      user: `${capitalize(words(random, 36))}?`,
      assistant: `${capitalize(words(random, 36))}.`,
    });
  }
  const conversationNonce = words(random, 4);
  const requests: BenchMessage[][] = [];
  for (let k = 0; k < turns; k++) {
    const nonce = shareHistory ? conversationNonce : words(random, 4);
    const messages: BenchMessage[] = [{ role: "system", content: `${capitalize(nonce)}. ${system}` }];
    for (let t = 0; t <= k; t++) {
      const turn = turnsText[t] as { user: string; assistant: string };
      messages.push({ role: "user", content: turn.user });
      if (t < k) messages.push({ role: "assistant", content: turn.assistant });
    }
    requests.push(messages);
  }
  return requests;
}

/** The ChatML text the generated models' template renders (add_generation_prompt on). */
export function renderChatMl(messages: readonly BenchMessage[]): string {
  let text = "";
  for (const m of messages) text += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
  return `${text}<|im_start|>assistant\n`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
