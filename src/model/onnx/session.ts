// The generator on ONNX Runtime (onnxruntime-node, CPU execution provider): graphs built in memory
// from a ParamStore, one session for the mapping network and one per synthesis noise mode (const at
// creation, the others on first use). Inputs and outputs are plain Float32Arrays, images NCHW as the official networks.
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import type { GeneratorConfig } from '../config.ts';
import { numWs } from '../config.ts';
import type { ParamStore } from '../params.ts';
import { buildGeneratorModel, type GeneratorWeights, type OnnxNoiseMode } from './generator-graph.ts';

type Ort = typeof import('onnxruntime-node');

let ortModule: Promise<Ort> | null = null;

/** onnxruntime-node, loaded on first use so that a machine without its native binary still runs tfjs. */
export function loadOrt(): Promise<Ort> {
  ortModule ??= import('onnxruntime-node').then((m) => ((m as { default?: Ort }).default ?? m) as Ort);
  return ortModule;
}

/** Downloads a ParamStore's tensors (async: the webgpu backend forbids synchronous reads). */
export async function readWeights(params: ParamStore): Promise<GeneratorWeights> {
  const weights: GeneratorWeights = new Map();
  for (const [name, t] of params)
    weights.set(name, { shape: [...t.shape], data: (await t.data()) as Float32Array });
  return weights;
}

/** Execution providers this code runs the generator on (both bundled with onnxruntime-node). */
export const ONNX_PROVIDERS = ['cpu', 'webgpu'] as const;
export type OnnxProvider = (typeof ONNX_PROVIDERS)[number];

export interface OnnxGeneratorOptions {
  /** Intra-op threads; 0 or undefined: ONNX Runtime's default (one per physical core). */
  threads?: number;
  /** Default cpu; webgpu keeps the CPU provider for any node WebGPU lacks. */
  provider?: OnnxProvider;
}

export class OnnxGenerator {
  private readonly sessions = new Map<string, Promise<InferenceSession>>();
  private released = false;

  private constructor(
    readonly cfg: GeneratorConfig,
    private readonly ort: Ort,
    private readonly weights: () => Promise<GeneratorWeights>,
    private readonly opts: OnnxGeneratorOptions,
  ) {}

  /**
   * A generator over `params` (read again whenever another session is built, so nothing is held
   * twice). Builds the mapping and const-noise synthesis sessions at once: a graph the runtime
   * rejects fails here, where the caller can still fall back to tfjs.
   */
  static async create(
    cfg: GeneratorConfig,
    params: ParamStore,
    opts: OnnxGeneratorOptions = {},
  ): Promise<OnnxGenerator> {
    const ort = await loadOrt();
    const G = new OnnxGenerator(cfg, ort, () => readWeights(params), opts);
    // The two sessions every request needs, from one read of the weights.
    const weights = await readWeights(params);
    try {
      await Promise.all([G.session('mapping', weights), G.session('synthesis:const', weights)]);
    } catch (err) {
      await G.release();
      throw err;
    }
    return G;
  }

  private session(
    key: 'mapping' | `synthesis:${OnnxNoiseMode}`,
    preloaded?: GeneratorWeights,
  ): Promise<InferenceSession> {
    if (this.released) throw new Error('OnnxGenerator used after release()');
    let s = this.sessions.get(key);
    if (!s) {
      s = (async () => {
        const [part, noise] = key.split(':') as ['mapping' | 'synthesis', OnnxNoiseMode | undefined];
        const model = buildGeneratorModel(this.cfg, preloaded ?? (await this.weights()), { part, noise });
        return this.ort.InferenceSession.create(model, {
          executionProviders: this.opts.provider === 'webgpu' ? ['webgpu', 'cpu'] : ['cpu'],
          graphOptimizationLevel: 'all',
          intraOpNumThreads: this.opts.threads ?? 0,
          // Spinning threads starve everything else on a busy CPU-only server (bot, queue, other
          // workers), and measured no faster on 2 shared cores.
          extra: { session: { intra_op: { allow_spinning: '0' } } },
        });
      })();
      this.sessions.set(key, s);
      s.catch(() => this.sessions.get(key) === s && this.sessions.delete(key));
    }
    return s;
  }

  private tensor(data: Float32Array, dims: number[]): Tensor {
    return new this.ort.Tensor('float32', data, dims);
  }

  /** z [n, z_dim] -> ws [n, num_ws, w_dim], truncated by psi. */
  async map(z: Float32Array, n: number, psi = 1): Promise<Float32Array> {
    const session = await this.session('mapping');
    const out = await session.run({
      z: this.tensor(z, [n, this.cfg.zDim]),
      psi: this.tensor(Float32Array.of(psi), [1]),
    });
    return out.ws.data as Float32Array;
  }

  /**
   * ws [n, num_ws, w_dim] -> images [n, C, H, W] (raw, roughly [-1, 1]). `random` noise draws each
   * layer's unit normal noise from `randn` (so it is reproducible where the caller seeds it).
   */
  async synthesize(
    ws: Float32Array,
    n: number,
    noise: OnnxNoiseMode = 'const',
    randn?: (count: number) => Float32Array,
  ): Promise<Float32Array> {
    const session = await this.session(`synthesis:${noise}`);
    const feeds: Record<string, Tensor> = {
      ws: this.tensor(ws, [n, numWs(this.cfg.resolution), this.cfg.wDim]),
    };
    if (noise === 'random') {
      if (!randn) throw new Error('synthesize: random noise needs a normal sampler');
      for (const name of session.inputNames) {
        if (name === 'ws') continue;
        const res = Number(/_b(\d+)_/.exec(name)?.[1]);
        feeds[name] = this.tensor(randn(n * res * res), [n, 1, res, res]);
      }
    }
    const out = await session.run(feeds);
    return out.img.data as Float32Array;
  }

  async generate(z: Float32Array, n: number, psi = 1, noise: OnnxNoiseMode = 'const'): Promise<Float32Array> {
    return this.synthesize(
      await this.map(z, n, psi),
      n,
      noise,
      noise === 'random' ? gaussianNoise : undefined,
    );
  }

  /** Frees the sessions' native memory (weights and arenas). */
  async release(): Promise<void> {
    this.released = true;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) {
      try {
        await (await s).release();
      } catch {
        // A session that failed to build holds nothing.
      }
    }
  }
}

/** Unseeded unit normal samples (Box-Muller), for random noise mode. */
function gaussianNoise(count: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - Math.random()));
    const t = 2 * Math.PI * Math.random();
    out[i] = r * Math.cos(t);
    if (i + 1 < count) out[i + 1] = r * Math.sin(t);
  }
  return out;
}
