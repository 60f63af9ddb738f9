import type { ServiceError } from "../../../../core/errors.js";
import { linkSignals } from "../../../../core/linked-signal.js";
import type {
  EngineEvent,
  FimTokens,
  ModelMetadata,
  PromptTokenScore,
  TokenGeneration,
} from "../../engine.js";
import { type GgufFacts, readGgufFacts } from "../gguf-facts.js";
import { invalidGrammar } from "../grammar-check.js";
import type { EngineProcess, EngineProcessSpec } from "../process-supervisor.js";
import { type SlotRun, type SupervisedEngineOptions, SupervisedLocalEngine } from "../supervised-engine.js";
import { cachedFrom, completionBody, promptScoringBody } from "./completion-request.js";
import { CompletionStream, type ProbEntry, scoreOf } from "./completion-stream.js";
import { llamaServerArgs, llamaServerEnv } from "./llama-server-args.js";
import { LlamaServerClient, LlamaServerHttpError, waitForHealth } from "./llama-server-client.js";

export interface LlamaServerEngineOptions extends SupervisedEngineOptions {
  /** The llama-server executable. */
  binary: string;
  batchThreads?: number;
  flashAttention?: "auto" | "on" | "off";
  kvCacheType?: string;
  extraArgs?: readonly string[];
}

/**
 * llama.cpp's own llama-server as a supervised child process, driven through its native
 * endpoints with token ids in and token ids out. Admission, queueing and the choice of slot are
 * SupervisedLocalEngine's; this is the HTTP transport: it names the slot (`id_slot`) and streams
 * /completion.
 */
export class LlamaServerEngine extends SupervisedLocalEngine<LlamaServerEngineOptions> {
  readonly grammars = true;

  private facts: GgufFacts | undefined;
  private contextSize = 0;
  private client: LlamaServerClient | undefined;
  private newlineTokens: number[] | undefined;
  /** Embedding mode: the pooling llama-server is started with. */
  private embeddingPooling: "mean" | "cls" | "last" | undefined;

  constructor(options: LlamaServerEngineOptions) {
    super("llama-server", options);
  }

  /** llama-server's own view of its slots (GET /slots): which are processing, what they hold. */
  async slotsInfo(): Promise<{ id: number; is_processing: boolean }[]> {
    return this.withClient((client, signal) =>
      client.json<{ id: number; is_processing: boolean }[]>("GET", "/slots", undefined, signal),
    );
  }

  protected processSpec(): EngineProcessSpec {
    return {
      kind: this.engineName,
      model: this.options.modelId,
      command: this.options.binary,
      args: ({ port }) =>
        llamaServerArgs(
          {
            modelPath: this.modelPath as string,
            contextSize: this.contextSize,
            slots: this.options.slots,
            threads: this.options.threads,
            batchThreads: this.options.batchThreads,
            gpuLayers: this.options.gpuLayers,
            flashAttention: this.options.flashAttention,
            kvCacheType: this.options.kvCacheType,
            extraArgs: this.options.extraArgs,
            embedding: this.embeddingPooling && { pooling: this.embeddingPooling },
          },
          port,
        ),
      env: ({ apiKey }) => llamaServerEnv(apiKey),
      waitReady: (process, signal) => waitForHealth(process, signal),
    };
  }

  protected override onProcessReady(process: EngineProcess): void {
    // A new process needs its own connections.
    this.clientFor(process);
  }

  protected override async closeTransport(): Promise<void> {
    await this.client?.close();
    this.client = undefined;
  }

  protected override async beforeStart(modelPath: string): Promise<void> {
    // The context goes on llama-server's command line: read the default from the GGUF header.
    this.facts = await readGgufFacts(modelPath);
    this.contextSize =
      this.options.contextSize ?? Math.min(this.facts.trainContextSize, this.options.contextSizeCap);
    if (this.options.embedding) {
      const own = this.facts.pooling;
      if (own === "rank") throw new Error("this GGUF is a reranker (pooling rank), not an embedding model");
      // A model without pooling of its own embeds with its last token's state, as in-process does.
      this.embeddingPooling =
        this.options.embedding.pooling ?? (own === undefined || own === "none" ? "last" : own);
    }
  }

  protected async readMetadata(): Promise<ModelMetadata> {
    const facts = this.facts as GgufFacts;
    const props = await this.withClient((client, signal) =>
      client.json<LlamaServerProps>("GET", "/props", undefined, signal),
    );
    const models = await this.withClient((client, signal) =>
      client.json<{ data?: { meta?: { n_vocab?: number; n_embd?: number; n_ctx_train?: number } }[] }>(
        "GET",
        "/v1/models",
        undefined,
        signal,
      ),
    );
    const modelMeta = models.data?.[0]?.meta ?? {};
    const bosToken = props.bos_token || undefined;
    const eosToken = props.eos_token || undefined;
    const [bosTokenId, eosTokenId, withSpecial, fim] = await Promise.all([
      bosToken ? this.singleToken(bosToken) : undefined,
      eosToken ? this.singleToken(eosToken) : undefined,
      // Whether llama.cpp itself puts BOS in front (and EOS after): tokenize with special tokens added.
      this.withClient((client, signal) =>
        client.json<{ tokens: number[] }>("POST", "/tokenize", { content: "a", add_special: true }, signal),
      ),
      facts.fim ?? this.fimByText(),
    ]);
    const addBosToken = bosTokenId !== undefined && withSpecial.tokens[0] === bosTokenId;
    const addEosToken = eosTokenId !== undefined && withSpecial.tokens.at(-1) === eosTokenId;
    return {
      contextSize: props.default_generation_settings?.n_ctx ?? this.contextSize,
      trainContextSize: modelMeta.n_ctx_train ?? facts.trainContextSize,
      // The GGUF's own template (as in-process reads it), not llama-server's fallback.
      chatTemplate: facts.chatTemplate,
      bosToken,
      eosToken,
      addBosToken,
      bosTokenId,
      vocabSize: modelMeta.n_vocab ?? facts.vocabSize,
      longestTokenBytes: facts.longestTokenBytes,
      embeddingSize: modelMeta.n_embd ?? facts.embeddingSize,
      slots: this.options.slots,
      eosTokenId,
      addEosToken,
      pooling: this.embeddingPooling,
      fim,
    };
  }

  protected async *generateOnSlot(
    process: EngineProcess,
    run: SlotRun,
    req: TokenGeneration,
    signal: AbortSignal,
  ): AsyncGenerator<EngineEvent> {
    const prompt = req.promptTokens;
    const scoring = req.promptLogprobs !== undefined;
    // Scoring evaluates the whole prompt again (cached tokens keep no logits): none of it counts as cached.
    const expectedReuse = scoring ? 0 : this.slotCaches.expectedReuse(run.slot, prompt);
    // max_tokens 0 never reaches llama-server: its n_predict 0 does not mean "generate nothing".
    if (scoring || req.maxTokens <= 0) {
      yield { type: "prompt", promptTokens: prompt.length, cachedTokens: expectedReuse };
    }
    if (scoring) {
      const tokens = await this.scorePrompt(process, run, req, signal);
      if (signal.aborted) return;
      yield { type: "prompt-logprobs", tokens };
    }
    if (req.maxTokens <= 0) {
      yield { type: "end", reason: "length" };
      return;
    }
    // What llama-server will hold in this slot whatever happens next: the prompt, then what it generates.
    run.cached = [...prompt];
    const completion = new CompletionStream(req.topLogprobs);
    const linked = linkSignals(signal, process.signal);
    try {
      const contextSize = this.modelLoad.peek()?.contextSize ?? this.contextSize;
      const stream = this.clientFor(process).stream(
        "/completion",
        completionBody(req, run.slot, contextSize),
        linked.signal,
      );
      let started = scoring;
      for await (const message of stream) {
        if (!started) {
          started = true;
          yield {
            type: "prompt",
            promptTokens: prompt.length,
            cachedTokens: cachedFrom(message) ?? expectedReuse,
          };
        }
        for (const event of completion.push(message)) {
          yield event;
          if (event.type === "end") return;
        }
      }
      if (signal.aborted) return;
      throw new Error("llama-server ended the stream without a final message");
    } catch (err) {
      throw grammarRefusal(err) ?? err;
    } finally {
      linked.dispose();
      if (completion.generated.length > 0) run.cached = [...prompt, ...completion.generated];
    }
  }

  /**
   * The prompt's tokens scored. /completion reports probabilities only for the tokens it
   * generates, so the prompt is generated: from its first token, a grammar of token ids admits
   * exactly the rest of the prompt, one token at a time, and each comes back with the model's own
   * probability of it and the top alternatives (before the grammar, post_sampling_probs off).
   */
  private async scorePrompt(
    process: EngineProcess,
    run: SlotRun,
    req: TokenGeneration,
    signal: AbortSignal,
  ): Promise<PromptTokenScore[]> {
    const prompt = req.promptTokens;
    const first = prompt[0];
    if (first === undefined) return [];
    const scores: PromptTokenScore[] = [{ token: first, piece: await this.detokenize([first]) }];
    if (prompt.length < 2) return scores;
    run.cached = [first];
    const result = await this.clientFor(process).json<{ completion_probabilities?: ProbEntry[] }>(
      "POST",
      "/completion",
      promptScoringBody(prompt, req.promptLogprobs ?? 0, run.slot),
      signal,
    );
    const entries = result.completion_probabilities ?? [];
    run.cached = prompt.slice(0, 1 + entries.length);
    for (let i = 1; i < prompt.length; i++) {
      const entry = entries[i - 1];
      if (!entry || entry.id !== prompt[i]) {
        // An end-of-generation token in the prompt ends llama-server's generation there.
        throw new Error(`llama-server scored the prompt only up to token ${i}`);
      }
      scores.push({ token: entry.id, ...scoreOf(entry, req.promptLogprobs ?? 0) });
    }
    return scores;
  }

  /**
   * All inputs in one /embedding call: llama-server spreads them over its slots and evaluates
   * the slots' inputs together in each batch. Vectors come back unnormalised (embd_normalize -1):
   * the backend normalises, the same way for every engine.
   */
  protected async embedInProcess(
    process: EngineProcess,
    inputs: readonly (readonly number[])[],
    signal: AbortSignal,
  ): Promise<Float32Array[]> {
    const results = await this.clientFor(process).json<{ index: number; embedding: number[][] }[]>(
      "POST",
      "/embedding",
      { content: inputs, embd_normalize: -1 },
      signal,
    );
    const vectors: Float32Array[] = new Array(inputs.length);
    for (const result of results) {
      const vector = result.embedding[0];
      if (!vector || result.index < 0 || result.index >= inputs.length) {
        throw new Error("llama-server answered /embedding with an unexpected result");
      }
      vectors[result.index] = Float32Array.from(vector);
    }
    if (results.length !== inputs.length) throw new Error("llama-server returned too few embeddings");
    return vectors;
  }

  protected async tokenizeInEngine(
    text: string,
    options: { special: boolean; continuation?: boolean },
  ): Promise<number[]> {
    return options.continuation
      ? this.tokenizeContinuation(text, options.special)
      : this.rawTokenize(text, options.special);
  }

  protected async detokenizeInEngine(tokens: readonly number[]): Promise<string> {
    const { content } = await this.withClient((client, signal) =>
      client.json<{ content: string }>("POST", "/detokenize", { tokens }, signal),
    );
    return content;
  }

  private withClient<T>(call: (client: LlamaServerClient, signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.withProcess((process, signal) => call(this.clientFor(process), signal));
  }

  private clientFor(process: EngineProcess): LlamaServerClient {
    if (!this.client || this.client.process !== process) {
      void this.client?.close();
      this.client = new LlamaServerClient(process, this.options.slots + 4);
    }
    return this.client;
  }

  private async rawTokenize(text: string, special: boolean): Promise<number[]> {
    const { tokens } = await this.withClient((client, signal) =>
      client.json<{ tokens: number[] }>(
        "POST",
        "/tokenize",
        { content: text, add_special: false, parse_special: special },
        signal,
      ),
    );
    return tokens;
  }

  /**
   * Text that continues a prompt: SPM tokenizers put a space in front of the start of a text, so
   * the text is tokenized after a newline and the newline's tokens are cut off again (what
   * node-llama-cpp's "trimLeadingSpace" does, so both engines tokenize alike).
   */
  private async tokenizeContinuation(text: string, special: boolean): Promise<number[]> {
    this.newlineTokens ??= await this.rawTokenize("\n", false);
    const newline = this.newlineTokens;
    if (text.startsWith("\n")) return this.rawTokenize(text, special);
    const tokens = await this.rawTokenize(`\n${text}`, special);
    if (newline.length > 0 && newline.every((t, i) => tokens[i] === t)) return tokens.slice(newline.length);
    return this.rawTokenize(text, special);
  }

  /**
   * Fill-in-the-middle tokens named by their texts, for a GGUF whose header has no keys for them
   * (llama.cpp's vocabulary loader looks for the same well-known spellings).
   */
  private async fimByText(): Promise<FimTokens | undefined> {
    for (const [prefix, suffix, middle] of FIM_SPELLINGS) {
      const ids = await Promise.all([prefix, suffix, middle].map((text) => this.singleToken(text)));
      const [p, s, m] = ids;
      if (p !== undefined && s !== undefined && m !== undefined) return { prefix: p, suffix: s, middle: m };
    }
    return undefined;
  }

  private async singleToken(text: string): Promise<number | undefined> {
    const tokens = await this.rawTokenize(text, true);
    return tokens.length === 1 ? tokens[0] : undefined;
  }
}

/**
 * llama-server's 400 for a grammar its parser refuses (it answers before streaming anything),
 * as the same 400 `invalid_grammar` the other engines give; undefined for any other failure.
 */
function grammarRefusal(err: unknown): ServiceError | undefined {
  if (!(err instanceof LlamaServerHttpError) || err.status !== 400 || !/grammar/i.test(err.body))
    return undefined;
  let message = err.body;
  try {
    message = (JSON.parse(err.body) as { error?: { message?: string } }).error?.message ?? message;
  } catch {
    // Not JSON: the body as it came.
  }
  return invalidGrammar(`The grammar could not be parsed: ${message.slice(0, 200)}`);
}

/** How models spell their fill-in-the-middle tokens (prefix, suffix, middle). */
const FIM_SPELLINGS = [
  ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"],
  ["<fim-prefix>", "<fim-suffix>", "<fim-middle>"],
  ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
  ["<PRE>", "<SUF>", "<MID>"],
  ["▁<PRE>", "▁<SUF>", "▁<MID>"],
] as const;

interface LlamaServerProps {
  default_generation_settings?: { n_ctx?: number };
  total_slots?: number;
  bos_token?: string;
  eos_token?: string;
  chat_template?: string;
}
