import type {
  BackendCapabilities,
  DeploymentReport,
  GenerationRequest,
  ModelBackend,
} from "../core/generation.js";
import type { DeploymentState } from "./deployment-state.js";

export interface DeploymentTargetOptions {
  name: string;
  provider: string;
  backend: ModelBackend;
  weight: number;
  maxRetries: number;
  /** The router built (and closes) this backend; a local model's backend belongs to its own entry. */
  owned: boolean;
}

/** One deployment as the router sees it: its backend, its share, its health. */
export class DeploymentTarget {
  readonly name: string;
  readonly provider: string;
  readonly backend: ModelBackend;
  readonly weight: number;
  readonly maxRetries: number;
  readonly owned: boolean;
  /** Circuit and rpm / tpm caps: this process' own, or shared by every instance through Redis. */
  readonly state: DeploymentState;
  /** Requests in flight from this instance (least_in_flight balances on it). */
  inFlight = 0;
  /** Attempts this instance sent, by how they ended. */
  readonly attempts = { succeeded: 0, failed: 0 };

  constructor(options: DeploymentTargetOptions, state: DeploymentState) {
    this.name = options.name;
    this.provider = options.provider;
    this.backend = options.backend;
    this.weight = options.weight;
    this.maxRetries = options.maxRetries;
    this.owned = options.owned;
    this.state = state;
  }

  report(): DeploymentReport {
    const { circuit, consecutiveFailures } = this.state.snapshot();
    return {
      name: this.name,
      provider: this.provider,
      circuit,
      consecutiveFailures,
      inFlight: this.inFlight,
      attempts: { ...this.attempts },
    };
  }
}

/** Whether a backend can honour everything a request asks for (so the router never sends it elsewhere). */
export function canServe(caps: BackendCapabilities, req: GenerationRequest): boolean {
  if (req.input.kind === "chat" ? !caps.chat : !caps.completions) return false;
  if (req.constraint?.tools && !caps.tools) return false;
  if (req.constraint?.format && !caps.structuredOutputs) return false;
  if (req.logprobs && !caps.logprobs) return false;
  if (req.input.kind !== "chat") return true;
  for (const message of req.input.messages) {
    if (message.role === "assistant" && message.toolCalls?.length && !caps.tools) return false;
    for (const part of message.content) {
      if (part.type === "image" && !caps.vision) return false;
      if (part.type === "audio" && !caps.audioInput) return false;
      if (part.type === "file" && !caps.fileInput) return false;
    }
  }
  return true;
}

/** Capabilities of a model served by any of these backends: what at least one can do. */
export function unionOf(all: readonly BackendCapabilities[]): BackendCapabilities {
  const union = { ...all[0] } as BackendCapabilities;
  for (const caps of all.slice(1)) {
    for (const key of Object.keys(union) as (keyof BackendCapabilities)[]) union[key] ||= caps[key];
  }
  return union;
}

/**
 * The order to try deployments in. least_in_flight: fewest requests in flight per unit of weight
 * first, ties broken by the weighted draw (at low load everything ties, and the weights must still
 * hold); weighted: a random order in which each deployment comes first in proportion to its weight.
 * Weight 0 deployments are standbys: they come last.
 */
export function orderTargets(
  targets: readonly DeploymentTarget[],
  balance: "weighted" | "least_in_flight",
  random: () => number,
): readonly DeploymentTarget[] {
  if (targets.length === 1) return targets;
  const keyed = targets.map((target) => {
    if (target.weight === 0) return { target, key: Number.POSITIVE_INFINITY, tie: random() };
    // Weighted sampling without replacement: the smallest -ln(u)/w comes first.
    const draw = -Math.log(1 - random()) / target.weight;
    if (balance === "least_in_flight") return { target, key: target.inFlight / target.weight, tie: draw };
    return { target, key: draw, tie: 0 };
  });
  keyed.sort((a, b) => a.key - b.key || a.tie - b.tie);
  return keyed.map((k) => k.target);
}
