import { modelNotFound } from "../core/errors.js";
import type { ModelBackend } from "../core/generation.js";
import type { ModelPricing } from "../core/pricing.js";

export interface Deployment {
  /** Public model id. */
  id: string;
  aliases: readonly string[];
  ownedBy: string;
  /** Unix seconds: when this deployment was configured. */
  created: number;
  /** Identifies the model build and engine so clients can notice a backend change. */
  systemFingerprint: string;
  backend: ModelBackend;
  /** Load at start-up rather than on first use. */
  loadAtStart: boolean;
  /** Prices for usage cost and cost budgets; undefined = free. */
  pricing?: ModelPricing;
}

/** Something the models share and that closes with them (the router's Redis connection). */
export interface SharedResource {
  close(): Promise<void>;
}

/** Maps public model names (ids and aliases) to deployments. Names are configuration, never code. */
export class ModelRegistry {
  private readonly byName = new Map<string, Deployment>();
  private readonly list: Deployment[] = [];
  private readonly shared: SharedResource[] = [];

  add(deployment: Deployment): void {
    for (const name of [deployment.id, ...deployment.aliases]) {
      if (this.byName.has(name)) throw new Error(`model name '${name}' is configured twice`);
      this.byName.set(name, deployment);
    }
    this.list.push(deployment);
  }

  /** The deployment for a model name, or 404 model_not_found. */
  resolve(name: string): Deployment {
    const deployment = this.byName.get(name);
    if (!deployment) throw modelNotFound(name);
    return deployment;
  }

  find(name: string): Deployment | undefined {
    return this.byName.get(name);
  }

  all(): readonly Deployment[] {
    return this.list;
  }

  /** Closes `resource` with the models, after them. */
  own(resource: SharedResource): void {
    this.shared.push(resource);
  }

  /** Closes every model's backend, then what they shared; failures do not stop the rest. */
  async close(): Promise<void> {
    await Promise.allSettled(this.list.map((d) => d.backend.close()));
    await Promise.allSettled(this.shared.map((r) => r.close()));
  }
}
