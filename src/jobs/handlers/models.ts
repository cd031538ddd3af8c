// The worker's models: resolved by name through the model registry, loaded once and kept warm
// (least recently used evicted), on the backend the worker started.
import { type BackendInfo, initBackend } from '../../model/backend.ts';
import {
  type Checkpoint,
  disposeCheckpoint,
  generatorParams,
  loadImageGenerator,
} from '../../model/checkpoint.ts';
import { Generator } from '../../model/networks/generator.ts';
import { ModelRegistry, modelDirs } from '../../model/registry.ts';
import { WarmCache } from '../warm-cache.ts';

export interface LoadedGenerator {
  checkpoint: Checkpoint;
  G: Generator;
}

export class WorkerModels {
  readonly registry: ModelRegistry;
  private readonly cache: WarmCache<LoadedGenerator>;
  private backend: Promise<BackendInfo> | null = null;

  constructor(dataDir: string, capacity = Number(process.env.FACESTYLE_MODEL_CACHE ?? 4)) {
    this.registry = new ModelRegistry(modelDirs(dataDir));
    this.cache = new WarmCache<LoadedGenerator>(capacity, (m) => disposeCheckpoint(m.checkpoint));
  }

  /** The worker's backend, started on first use (FACESTYLE_BACKEND, else the fastest). */
  ensureBackend(): Promise<BackendInfo> {
    this.backend ??= initBackend();
    return this.backend;
  }

  /** A generator by model name or checkpoint path. */
  async generator(nameOrPath: string): Promise<LoadedGenerator> {
    await this.ensureBackend();
    const entry = await this.registry.resolve(nameOrPath);
    return this.cache.get(entry.path, async () => {
      const checkpoint = await loadImageGenerator(entry.path);
      return { checkpoint, G: new Generator(checkpoint.config.G, generatorParams(checkpoint)) };
    });
  }

  /** Drops every warm model (after an out-of-memory error). */
  clear(): Promise<void> {
    return this.cache.clear();
  }
}
