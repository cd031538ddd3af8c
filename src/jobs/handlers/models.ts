// The worker's models: resolved by name through the model registry, loaded once and kept warm
// (least recently used evicted), on the backend the worker started.
import { logger } from '../../log.ts';
import { type BackendInfo, initBackend } from '../../model/backend.ts';
import {
  type Checkpoint,
  disposeCheckpoint,
  generatorParams,
  loadImageGenerator,
} from '../../model/checkpoint/io.ts';
import { Generator } from '../../model/networks/generator.ts';
import type { OnnxGenerator } from '../../model/onnx/session.ts';
import type { ParamStore } from '../../model/params.ts';
import {
  chooseEngine,
  createOnnxOrFallback,
  type EngineName,
  onnxWsRenderer,
  parseEngineSetting,
  type WsRenderer,
} from '../../pipelines/engine.ts';
import { ModelRegistry, modelDirs } from '../../pipelines/registry.ts';
import { renderWithTfjs } from '../../pipelines/showcase.ts';
import { type Lease, WarmCache } from '../warm-cache.ts';

const log = logger('worker');

export interface LoadedGenerator {
  checkpoint: Checkpoint;
  G: Generator;
  /** The same generator on ONNX Runtime, where the worker's engine is onnx and a session could be built. */
  onnx: OnnxGenerator | null;
}

export interface JobModels {
  /** A generator by model name or checkpoint path, kept loaded for the rest of the job. */
  generator(nameOrPath: string): Promise<LoadedGenerator>;
  /** Renders ws through the engine of the job's generators (ONNX sessions where they have them). */
  renderer(): WsRenderer;
  release(): Promise<void>;
}

export class WorkerModels {
  readonly registry: ModelRegistry;
  private readonly cache: WarmCache<LoadedGenerator>;
  private backend: Promise<BackendInfo> | null = null;
  private imageEngine: Promise<EngineName> | null = null;

  constructor(dataDir: string, capacity = Number(process.env.FACESTYLE_MODEL_CACHE ?? 4)) {
    this.registry = new ModelRegistry(modelDirs(dataDir));
    this.cache = new WarmCache<LoadedGenerator>(capacity, async (m) => {
      await m.onnx?.release();
      disposeCheckpoint(m.checkpoint);
    });
  }

  /** The engine generate and blend images use (FACESTYLE_ENGINE, else onnx on wasm/cpu), logged once. */
  engine(): Promise<EngineName> {
    this.imageEngine ??= this.ensureBackend().then((backend) => {
      const setting = parseEngineSetting();
      const engine = chooseEngine(setting, backend.name);
      log.info(`image engine ${engine}`, { FACESTYLE_ENGINE: setting, backend: backend.name });
      return engine;
    });
    return this.imageEngine;
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
        const engine = await this.engine();
        const lease = await this.cache.lease(entry.path, async () => {
          const checkpoint = await loadImageGenerator(entry.path);
          const params = generatorParams(checkpoint);
          const onnx =
            engine === 'onnx' ? await createOnnxOrFallback(checkpoint.config.G, params, entry.path) : null;
          return { checkpoint, G: new Generator(checkpoint.config.G, params), onnx };
        });
        leases.push(lease);
        return lease.value;
      },
      renderer: () => {
        const sessionFor = (params: ParamStore) =>
          leases.find((l) => l.value.G.params === params)?.value.onnx;
        return leases.some((l) => l.value.onnx) ? onnxWsRenderer(sessionFor, renderWithTfjs) : renderWithTfjs;
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
