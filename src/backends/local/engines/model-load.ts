import type { ModelMetadata } from "../engine.js";

/**
 * An engine's model load and what it learned (the metadata), shared by every engine. Many
 * requests may ask for the model at once: they all wait on one load. A load that fails is
 * forgotten, so the next request tries again (the file may have been downloaded meanwhile, a
 * crashed engine process restarted).
 */
export class ModelLoad {
  private meta: ModelMetadata | undefined;
  private loading: Promise<void> | undefined;

  /** `loadModel` does the work and resolves with the model's metadata. */
  constructor(private readonly loadModel: () => Promise<ModelMetadata>) {}

  load(): Promise<void> {
    this.loading ??= this.loadModel().then(
      (meta) => {
        this.meta = meta;
      },
      (err: unknown) => {
        this.loading = undefined;
        throw err;
      },
    );
    return this.loading;
  }

  isLoaded(): boolean {
    return this.meta !== undefined;
  }

  metadata(): ModelMetadata {
    if (!this.meta) throw new Error("model is not loaded");
    return this.meta;
  }

  /** The metadata when loaded, else undefined (for defaults that must not throw). */
  peek(): ModelMetadata | undefined {
    return this.meta;
  }

  /** Forgets the model (the engine closed it); a later load() starts over. */
  forget(): void {
    this.meta = undefined;
    this.loading = undefined;
  }
}
