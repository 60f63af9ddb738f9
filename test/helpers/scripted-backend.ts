import type { Cancellation } from "../../src/core/cancellation.js";
import type {
  BackendCapabilities,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedGeneration,
} from "../../src/core/generation.js";
import { ModelRegistry } from "../../src/router/model-registry.js";

/** Every capability on: the scripted backend accepts whatever the contract can carry. */
export const ALL_CAPABILITIES: BackendCapabilities = {
  chat: true,
  completions: true,
  embeddings: false,
  tools: true,
  structuredOutputs: true,
  vision: true,
  audioInput: false,
  fileInput: false,
  logprobs: false,
};

/** A step of a script: a part to yield, or an error to throw at that point. */
export type ScriptStep = GenerationPart | { throw: Error };

/**
 * A backend that plays a script of parts, so the encoders and drivers can be tested with parts no
 * local engine produces yet (tool calls, reasoning, refusals) and with failures at any point.
 */
export class ScriptedBackend implements ModelBackend {
  readonly capabilities = ALL_CAPABILITIES;
  /** Requests it was asked to prepare, newest last. */
  readonly requests: GenerationRequest[] = [];

  constructor(public script: ScriptStep[]) {}

  async prepare(request: GenerationRequest): Promise<PreparedGeneration> {
    this.requests.push(request);
    return {
      request,
      estimate: {
        promptTokens: 10,
        maxTokensPerChoice: request.maxTokens ?? 100,
        choices: request.n,
        exact: false,
      },
      progress: { promptTokens: 10, completionTokens: 0, cachedTokens: 0 },
    };
  }

  async *generate(_prepared: PreparedGeneration, cancel: Cancellation): AsyncGenerator<GenerationPart> {
    for (const step of this.script) {
      if (cancel.aborted) return;
      await new Promise((resolve) => setImmediate(resolve));
      if ("throw" in step) throw step.throw;
      yield step;
    }
  }

  async ready(): Promise<void> {}
  isReady(): boolean {
    return true;
  }
  health() {
    return { loaded: true, serving: true };
  }
  stats() {
    return { slots: 1, busySlots: 0, queued: 0 };
  }
  async close(): Promise<void> {}
}

/** A registry with one scripted model. */
export function scriptedRegistry(backend: ScriptedBackend, id = "scripted"): ModelRegistry {
  const registry = new ModelRegistry();
  registry.add({
    id,
    aliases: [],
    ownedBy: "test",
    created: 0,
    systemFingerprint: "fp_scripted",
    backend,
    loadAtStart: false,
  });
  return registry;
}
