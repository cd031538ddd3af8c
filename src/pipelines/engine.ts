// Which engine makes images: tfjs on the worker's backend, or the generator's ONNX graph on ONNX
// Runtime's CPU provider, several times faster than tfjs where tfjs would run on wasm or cpu.
// FACESTYLE_ENGINE=auto|tfjs|onnx; auto takes onnx on those backends. Training and projection
// need gradients and stay on tfjs.
import { UserError } from '../errors.ts';
import type { RgbImage } from '../images/tensor-image.ts';
import { toUint8Pixel } from '../images/tensor-image.ts';
import { logger } from '../log.ts';
import type { GeneratorConfig } from '../model/config.ts';
import { ONNX_PROVIDERS, OnnxGenerator, type OnnxProvider } from '../model/onnx/session.ts';
import type { ParamStore } from '../model/params.ts';
import { type Variation, variationZ, zFromSeed } from '../model/seeds.ts';
import type { tf } from '../model/tf.ts';

const log = logger('engine');

export const ENGINE_SETTINGS = ['auto', 'tfjs', 'onnx'] as const;
export type EngineSetting = (typeof ENGINE_SETTINGS)[number];
export type EngineName = Exclude<EngineSetting, 'auto'>;

export function parseEngineSetting(value: string = process.env.FACESTYLE_ENGINE || 'auto'): EngineSetting {
  if (!ENGINE_SETTINGS.includes(value as EngineSetting)) {
    throw new UserError(
      `FACESTYLE_ENGINE must be ${ENGINE_SETTINGS.join(', ')}, got "${value}"`,
      'auto uses ONNX Runtime on CPU-only machines and tfjs where a GPU backend runs',
    );
  }
  return value as EngineSetting;
}

/**
 * FACESTYLE_ONNX_PROVIDER: cpu (default) or webgpu. WebGPU is opt-in: no measurement here shows it
 * faster than tfjs's own webgpu backend, which `auto` keeps on GPU machines.
 */
export function parseOnnxProvider(
  value: string = process.env.FACESTYLE_ONNX_PROVIDER || 'cpu',
): OnnxProvider {
  if (!ONNX_PROVIDERS.includes(value as OnnxProvider)) {
    throw new UserError(`FACESTYLE_ONNX_PROVIDER must be ${ONNX_PROVIDERS.join(' or ')}, got "${value}"`);
  }
  return value as OnnxProvider;
}

/** The engine for images: `setting` when explicit, else onnx where tfjs would run on wasm or cpu. */
export function chooseEngine(setting: EngineSetting, tfjsBackend: string): EngineName {
  if (setting !== 'auto') return setting;
  return tfjsBackend === 'wasm' || tfjsBackend === 'cpu' ? 'onnx' : 'tfjs';
}

/**
 * An ONNX generator for `params`, or null (with a log line saying why) when ONNX Runtime cannot
 * build a session for it: the caller goes on with tfjs.
 */
export async function createOnnxOrFallback(
  cfg: GeneratorConfig,
  params: ParamStore,
  what: string,
  { quiet = false } = {},
): Promise<OnnxGenerator | null> {
  const started = performance.now();
  try {
    const G = await OnnxGenerator.create(cfg, params);
    (quiet ? log.debug : log.info)(`engine onnx for ${what}`, {
      ms: Math.round(performance.now() - started),
    });
    return G;
  } catch (err) {
    log.warn(`engine onnx unavailable for ${what}, falling back to tfjs`, {
      error: err instanceof Error ? err.message : String(err),
    });
    return null;
  }
}

/** NCHW generator output (raw, about [-1, 1]) -> one RGB image each, the pixels tensorToRgb makes. */
export function nchwToRgb(values: Float32Array, count: number, channels: number, size: number): RgbImage[] {
  if (channels !== 3 && channels !== 1) throw new Error(`expected 1 or 3 image channels, got ${channels}`);
  const pixels = size * size;
  const out: RgbImage[] = [];
  for (let n = 0; n < count; n++) {
    const data = Buffer.allocUnsafe(pixels * 3);
    const base = n * pixels * channels;
    for (let i = 0; i < pixels; i++) {
      for (let c = 0; c < 3; c++) {
        data[3 * i + c] = toUint8Pixel(values[base + (channels === 3 ? c : 0) * pixels + i]);
      }
    }
    out.push({ width: size, height: size, data });
  }
  return out;
}

/** Renders ws [N, num_ws, w_dim] with a generator's params into RGB images (const noise). */
export type WsRenderer = (cfg: GeneratorConfig, params: ParamStore, ws: tf.Tensor3D) => Promise<RgbImage[]>;

/**
 * A WsRenderer on ONNX Runtime: models the worker already holds sessions for (`sessionFor`) render
 * through them; any other params (a blend of two of them) get a session for the call, released
 * after it. Where that session cannot be built, `fallback` (tfjs) renders.
 */
export function onnxWsRenderer(
  sessionFor: (params: ParamStore) => OnnxGenerator | null | undefined,
  fallback: WsRenderer,
): WsRenderer {
  return async (cfg, params, ws) => {
    const known = sessionFor(params);
    const G = known ?? (await createOnnxOrFallback(cfg, params, 'a blended generator', { quiet: true }));
    if (!G) return fallback(cfg, params, ws);
    try {
      const n = ws.shape[0];
      const img = await G.synthesize((await ws.data()) as Float32Array, n, 'const');
      return nchwToRgb(img, n, cfg.imgChannels, cfg.resolution);
    } finally {
      if (!known) await G.release();
    }
  };
}

export interface OnnxSeedsOptions {
  psi?: number;
  noiseMode?: 'const' | 'random' | 'none';
  /** Seeds are noise seeds of variations of this face, not faces of their own. */
  variation?: Variation;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * One image per seed on ONNX Runtime, `batchSize` per run: the faces generateFromSeeds makes
 * (z from each seed as NVIDIA's gen_images.py, const noise by default).
 */
export async function onnxImagesFromSeeds(
  G: OnnxGenerator,
  seeds: number[],
  opts: OnnxSeedsOptions = {},
): Promise<RgbImage[]> {
  const { zDim, imgChannels, resolution } = G.cfg;
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const images: RgbImage[] = [];
  for (let start = 0; start < seeds.length; start += batchSize) {
    const batch = seeds.slice(start, start + batchSize);
    const z = new Float32Array(batch.length * zDim);
    for (const [i, seed] of batch.entries())
      z.set(opts.variation ? variationZ(opts.variation, seed, zDim) : zFromSeed(seed, zDim), i * zDim);
    const img = await G.generate(z, batch.length, opts.psi ?? 1, opts.noiseMode ?? 'const');
    images.push(...nchwToRgb(img, batch.length, imgChannels, resolution));
    opts.onProgress?.(Math.min(start + batchSize, seeds.length), seeds.length);
  }
  return images;
}
