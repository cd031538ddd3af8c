// The worker's models: resolved by name through the model registry, loaded once and kept warm
// (least recently used evicted), on the backend the worker started.
import { type BackendInfo, initBackend } from '../../model/backend.ts';
import {
  type Checkpoint,
  disposeCheckpoint,
  generatorParams,
  loadImageGenerator,
} from '../../model/checkpoint/io.ts';
import { Generator } from '../../model/networks/generator.ts';
import { ModelRegistry, modelDirs } from '../../pipelines/registry.ts';
import { type Lease, WarmCache } from '../warm-cache.ts';

export interface LoadedGenerator {
  checkpoint: Checkpoint;
  G: Generator;
}

export interface JobModels {
  /** A generator by model name or checkpoint path, kept loaded for the rest of the job. */
  generator(nameOrPath: string): Promise<LoadedGenerator>;
  release(): Promise<void>;
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

  /**
   * The models of one job: every generator it asks for stays loaded until `release`, however many
   * it needs (the warm cache may not evict them under it).
   */
  scope(): JobModels {
    const leases: Array<Lease<LoadedGenerator>> = [];
    return {
      generator: async (nameOrPath) => {
        await this.ensureBackend();
        const entry = await this.registry.resolve(nameOrPath);
        const lease = await this.cache.lease(entry.path, async () => {
          const checkpoint = await loadImageGenerator(entry.path);
          return { checkpoint, G: new Generator(checkpoint.config.G, generatorParams(checkpoint)) };
        });
        leases.push(lease);
        return lease.value;
      },
      release: async () => {
        await Promise.all(leases.splice(0).map((lease) => lease.release()));
      },
    };
  }

  /** Runs `work` with a scope of its own, released when it ends however it ends. */
  async withScope<T>(work: (models: JobModels) => Promise<T>): Promise<T> {
    const scope = this.scope();
    try {
      return await work(scope);
    } finally {
      await scope.release();
    }
  }

  /** Drops every warm model (after an out-of-memory error). */
  clear(): Promise<void> {
    return this.cache.clear();
  }
}
