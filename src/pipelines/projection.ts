// Projection of an image into a generator's latent space (GAN inversion), after NVlabs'
// stylegan2-ada-pytorch projector.py: Adam on the latent from the centre of W, its learning-rate
// ramp-up/ramp-down, Gaussian latent noise that fades out, and optionally the per-layer noise
// inputs optimised with its multi-scale autocorrelation penalty. Two departures, both so that no
// downloaded network is needed: the perceptual distance uses the base model's own discriminator
// features (as JoJoGAN does) instead of VGG16 LPIPS, plus a pixel term; and the latent is W+ (one w
// per synthesis layer) by default, which reconstructs photos that lie outside the model's W.
//
// Only the latent (and noise) get gradients, so tfjs's native kernels suffice on every backend:
// the tape prunes every path that does not lead back to them (no filter gradients are needed).
import { UserError } from '../errors.ts';
import type { Discriminator } from '../model/networks/discriminator.ts';
import { Generator } from '../model/networks/generator.ts';
import type { ParamStore } from '../model/params.ts';
import { NumpyRandomState } from '../model/seeds.ts';
import { tf } from '../model/tf.ts';

export interface PerceptualLoss {
  /** The base model's discriminator: its block outputs are the features compared. */
  discriminator: Discriminator;
  /** Default 1. */
  weight?: number;
}

export interface ProjectionProgress {
  /** Steps done (1-based). */
  step: number;
  steps: number;
  /** Weighted total of this step, before the update. */
  loss: number;
  pixel: number;
  perceptual: number;
  noiseRegularization: number;
  learningRate: number;
  /**
   * The current reconstruction (NHWC, [-1, 1]) every `previewEvery` steps and at the last step.
   * Owned by the projection: disposed as soon as the callback (and its promise) returns.
   */
  preview?: tf.Tensor4D;
}

export interface ProjectOptions {
  /** Adam steps. Default 500. */
  steps?: number;
  /** Peak learning rate. Default 0.1 (official). */
  learningRate?: number;
  /** Fraction of the steps over which the learning rate ramps up from 0. Default 0.05 (official). */
  lrRampup?: number;
  /** Fraction of the steps over which it falls back to 0 (cosine). Default 0.25 (official). */
  lrRampdown?: number;
  /** Latent noise at step 0, as a fraction of W's spread. Default 0.05 (official). */
  initialNoiseFactor?: number;
  /** Fraction of the steps after which the latent noise is gone (quadratic fade). Default 0.75. */
  noiseRampLength?: number;
  /**
   * Also optimise the per-layer noise inputs (from random, renormalised after every step), as the
   * official projector does. Default true.
   */
  optimizeNoise?: boolean;
  /** Weight of the noise autocorrelation penalty. Default 1e5 (official). */
  noiseRegularizeWeight?: number;
  /** One w per synthesis layer (W+); false optimises a single w shared by all layers (W). Default true. */
  wPlus?: boolean;
  /** Discriminator-feature distance; null for pixels only. Default null. */
  perceptual?: PerceptualLoss | null;
  /** Weight of the mean squared pixel error. Default 1. */
  pixelWeight?: number;
  /** The pixel term is computed on an area-downsampled copy at most this large. Default 256. */
  pixelResolution?: number;
  /** z samples mapped to find the centre and spread of W. Default 10000 (official). */
  wAvgSamples?: number;
  /** Seed of the latent and noise randomness. Default 303 (official projector's CLI). */
  seed?: number;
  /** Steps between previews. Default 50. */
  previewEvery?: number;
  onProgress?: (progress: ProjectionProgress) => void | Promise<void>;
  /** Checked before every step: an abort ends the projection within one step. */
  signal?: AbortSignal;
}

export interface Projection {
  /** The latent, [1, num_ws, w_dim] (in W mode every row is the same w). Caller disposes. */
  ws: tf.Tensor3D;
  /**
   * The optimised noise inputs by parameter name (`synthesis.b8.conv0.noise_const`, [r, r]), or
   * null when noise was not optimised. Render with `withNoise`. Caller disposes.
   */
  noise: Map<string, tf.Tensor2D> | null;
  /** Total loss of every step, in order. */
  losses: number[];
  steps: number;
  seconds: number;
}

/**
 * A projection stopped by its AbortSignal. Thrown rather than returning a partial latent: a
 * half-finished projection (learning rate still high, latent noise still on) is not a result
 * anyone should render. All tensors are released before it is thrown.
 */
export class ProjectionCancelledError extends UserError {
  override name = 'ProjectionCancelledError';
  constructor(
    /** Steps completed before the abort was seen. */
    readonly step: number,
    readonly steps: number,
  ) {
    super(`projection cancelled after ${step} of ${steps} steps`);
  }
}

/** Learning rate and latent-noise scale of one step, as projector.py schedules them. */
export function projectionSchedule(
  step: number,
  steps: number,
  opts: {
    learningRate: number;
    lrRampup: number;
    lrRampdown: number;
    initialNoiseFactor: number;
    noiseRampLength: number;
    wStd: number;
  },
): { learningRate: number; noiseScale: number } {
  const t = step / steps;
  const noiseScale = opts.wStd * opts.initialNoiseFactor * Math.max(0, 1 - t / opts.noiseRampLength) ** 2;
  let ramp = Math.min(1, (1 - t) / opts.lrRampdown);
  ramp = 0.5 - 0.5 * Math.cos(ramp * Math.PI);
  ramp *= Math.min(1, t / opts.lrRampup);
  return { learningRate: opts.learningRate * ramp, noiseScale };
}

/**
 * Centre and spread of W from `samples` z drawn as projector.py draws them (numpy RandomState(123)):
 * the mean w, and the root of the mean squared distance to it (one number over all dimensions).
 */
export async function wStatistics(
  G: Generator,
  samples = 10_000,
  batchSize = 1000,
): Promise<{ wAvg: Float32Array; wStd: number }> {
  if (!(Number.isInteger(samples) && samples >= 2))
    throw new RangeError(`wAvgSamples must be an integer >= 2, got ${samples}`);
  const { zDim, wDim } = G.cfg;
  const rng = new NumpyRandomState(123);
  const sum = new Float64Array(wDim);
  const sumSq = new Float64Array(wDim);
  for (let start = 0; start < samples; start += batchSize) {
    const n = Math.min(batchSize, samples - start);
    const z = Float32Array.from(rng.randn(n * zDim));
    const w = tf.tidy(() => G.mapping.embed(G.params, tf.tensor2d(z, [n, zDim])));
    const values = await w.data();
    w.dispose();
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < wDim; d++) {
        const v = values[i * wDim + d];
        sum[d] += v;
        sumSq[d] += v * v;
      }
    }
  }
  const wAvg = new Float32Array(wDim);
  let variance = 0;
  for (let d = 0; d < wDim; d++) {
    const mean = sum[d] / samples;
    wAvg[d] = mean;
    variance += Math.max(0, sumSq[d] / samples - mean * mean);
  }
  return { wAvg, wStd: Math.sqrt(variance) };
}

/** Names of the generator's per-layer noise inputs. */
export function noiseInputNames(params: ParamStore): string[] {
  return [...params.keys()].filter((name) => name.endsWith('.noise_const'));
}

/**
 * A parameter store that reads `noise` in place of the generator's own noise inputs (borrowing
 * every other tensor): render with `noiseMode: 'const'`. Works for any generator of the same
 * architecture, e.g. a blend of the projected model.
 */
export function withNoise(params: ParamStore, noise: Map<string, tf.Tensor> | null): ParamStore {
  if (!noise) return params;
  const out: ParamStore = new Map(params);
  for (const [name, t] of noise) {
    const own = params.get(name);
    if (!own || !tf.util.arraysEqual(own.shape, t.shape))
      throw new Error(`noise input ${name} [${t.shape}] does not fit this generator`);
    out.set(name, t);
  }
  return out;
}

/** Area downsampling to at most `size` pixels across (no-op when already small enough). */
function downsampleTo(images: tf.Tensor4D, size: number): tf.Tensor4D {
  const factor = images.shape[1] / size;
  if (factor <= 1) return images;
  return tf.avgPool(images, factor, factor, 'valid');
}

/** Features normalised to unit length over channels at every pixel, as LPIPS does. */
function unitFeatures(features: tf.Tensor4D[]): tf.Tensor4D[] {
  return features.map((f) => tf.div(f, tf.add(tf.norm(f, 'euclidean', -1, true), 1e-8)) as tf.Tensor4D);
}

function discriminatorFeatures(D: Discriminator, images: tf.Tensor4D): tf.Tensor4D[] {
  const features: tf.Tensor4D[] = [];
  D.forward(images, { features });
  return unitFeatures(features);
}

/** torch.roll(x, 1, axis): the last entry along `axis` moves to the front. */
function rollByOne(x: tf.Tensor4D, axis: 1 | 2): tf.Tensor4D {
  const n = x.shape[axis];
  const lastBegin = [0, 0, 0, 0];
  lastBegin[axis] = n - 1;
  const lastSize = [-1, -1, -1, -1];
  lastSize[axis] = 1;
  const restSize = [-1, -1, -1, -1];
  restSize[axis] = n - 1;
  return tf.concat([tf.slice(x, lastBegin, lastSize), tf.slice(x, [0, 0, 0, 0], restSize)], axis);
}

/**
 * projector.py's noise regulariser: at every scale down to 8x8, the squared mean product of the
 * noise with itself shifted by one pixel, horizontally and vertically.
 */
function noiseAutocorrelation(noise: tf.Tensor2D[]): tf.Scalar {
  const terms: tf.Scalar[] = [];
  for (const buffer of noise) {
    let x = tf.reshape(buffer, [1, buffer.shape[0], buffer.shape[1], 1]) as tf.Tensor4D;
    for (;;) {
      terms.push(tf.square(tf.mean(tf.mul(x, rollByOne(x, 2)))) as tf.Scalar);
      terms.push(tf.square(tf.mean(tf.mul(x, rollByOne(x, 1)))) as tf.Scalar);
      if (x.shape[1] <= 8) break;
      x = tf.avgPool(x, 2, 2, 'valid');
    }
  }
  return tf.addN(terms);
}

/** Adam with the torch defaults (betas 0.9/0.999, eps 1e-8) and a learning rate set per step. */
class AdamState {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private t = 0;

  constructor(private readonly vars: tf.Variable[]) {
    // tidy frees the zeros' handles; variables outlive it.
    this.m = tf.tidy(() => vars.map((x) => tf.variable(tf.zerosLike(x), false)));
    this.v = tf.tidy(() => vars.map((x) => tf.variable(tf.zerosLike(x), false)));
  }

  /** Call inside tf.tidy. */
  apply(grads: tf.Tensor[], learningRate: number): void {
    this.t++;
    const c1 = 1 - 0.9 ** this.t;
    const c2 = 1 - 0.999 ** this.t;
    grads.forEach((g, i) => {
      const m = tf.add(tf.mul(this.m[i], 0.9), tf.mul(g, 0.1));
      const v = tf.add(tf.mul(this.v[i], 0.999), tf.mul(tf.square(g), 0.001));
      this.m[i].assign(m);
      this.v[i].assign(v);
      const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), 1e-8));
      this.vars[i].assign(tf.sub(this.vars[i], tf.mul(update, learningRate)));
    });
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}

function checkTarget(G: Generator, target: tf.Tensor4D): void {
  const r = G.cfg.resolution;
  const expected = [1, r, r, G.cfg.imgChannels];
  if (!tf.util.arraysEqual(target.shape, expected))
    throw new UserError(
      `projection target has shape [${target.shape}]; this model needs one image [${expected}]`,
    );
}

function positive(value: number, name: string, integer = false): number {
  if (!(Number.isFinite(value) && value > 0) || (integer && !Number.isInteger(value)))
    throw new UserError(`${name} must be a positive ${integer ? 'whole number' : 'number'}, got ${value}`);
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!(Number.isFinite(value) && value >= 0))
    throw new UserError(`${name} must be a number >= 0, got ${value}`);
  return value;
}

/**
 * Finds the latent (and, by default, noise inputs) whose rendering by `G` best matches `target`
 * (NHWC [1, res, res, C] in [-1, 1]). Throws ProjectionCancelledError when `signal` aborts.
 */
export async function project(
  G: Generator,
  target: tf.Tensor4D,
  opts: ProjectOptions = {},
): Promise<Projection> {
  checkTarget(G, target);
  const steps = positive(opts.steps ?? 500, 'steps', true);
  const learningRate = positive(opts.learningRate ?? 0.1, 'learning rate');
  const lrRampup = positive(opts.lrRampup ?? 0.05, 'lrRampup');
  const lrRampdown = positive(opts.lrRampdown ?? 0.25, 'lrRampdown');
  const initialNoiseFactor = nonNegative(opts.initialNoiseFactor ?? 0.05, 'initialNoiseFactor');
  const noiseRampLength = positive(opts.noiseRampLength ?? 0.75, 'noiseRampLength');
  const noiseRegularizeWeight = nonNegative(opts.noiseRegularizeWeight ?? 1e5, 'noiseRegularizeWeight');
  const pixelWeight = nonNegative(opts.pixelWeight ?? 1, 'pixel weight');
  const perceptualWeight = nonNegative(opts.perceptual?.weight ?? 1, 'perceptual weight');
  const pixelResolution = positive(opts.pixelResolution ?? 256, 'pixelResolution', true);
  if (!Number.isInteger(Math.log2(pixelResolution)))
    throw new UserError(`pixelResolution must be a power of two, got ${pixelResolution}`);
  const previewEvery = positive(opts.previewEvery ?? 50, 'previewEvery', true);
  const optimizeNoise = opts.optimizeNoise ?? true;
  const wPlus = opts.wPlus ?? true;
  const seed = opts.seed ?? 303;
  const D = opts.perceptual?.discriminator ?? null;
  if (D && D.cfg.resolution !== G.cfg.resolution)
    throw new UserError(
      `the discriminator is ${D.cfg.resolution}px but the generator ${G.cfg.resolution}px: use the base model's own`,
    );
  if (pixelWeight === 0 && !(D && perceptualWeight > 0))
    throw new UserError('projection needs a pixel weight > 0 or a perceptual loss with weight > 0');

  const started = performance.now();
  const { wAvg, wStd } = await wStatistics(G, opts.wAvgSamples ?? 10_000);
  const rows = wPlus ? G.numWs : 1;
  const wOpt = tf.tidy(() => tf.variable(tf.tile(tf.tensor3d(wAvg, [1, 1, G.cfg.wDim]), [1, rows, 1])));
  const noiseNames = optimizeNoise ? noiseInputNames(G.params) : [];
  // From the generator's own constant noise (an N(0, 1) draw like projector.py's fresh one), so a
  // generated image's projection starts from the noise it was rendered with.
  const noiseVars = noiseNames.map((name) => tf.variable(G.params.get(name)! as tf.Tensor2D, true));
  const noise = optimizeNoise ? new Map(noiseNames.map((name, i) => [name, noiseVars[i]])) : null;
  const optimized = [wOpt, ...noiseVars];
  const adam = new AdamState(optimized);
  const targetPixels = tf.tidy(() => tf.clone(downsampleTo(target, pixelResolution)));
  const targetFeatures = D ? tf.tidy(() => discriminatorFeatures(D, target)) : [];
  const generator = new Generator(G.cfg, withNoise(G.params, noise));
  const render = (w: tf.Tensor3D) =>
    generator.synthesize(wPlus ? w : (tf.tile(w, [1, G.numWs, 1]) as tf.Tensor3D), { noiseMode: 'const' });

  /** Unweighted [pixel, perceptual, noise regularisation] of rendering `w`. */
  const lossParts = (w: tf.Tensor3D): tf.Tensor1D => {
    const images = render(w);
    const zero = tf.scalar(0);
    const pixel =
      pixelWeight > 0
        ? tf.mean(tf.square(tf.sub(downsampleTo(images, pixelResolution), targetPixels)))
        : zero;
    const perceptual =
      D && perceptualWeight > 0
        ? tf.addN(
            discriminatorFeatures(D, images).map((f, i) =>
              tf.mean(tf.sum(tf.square(tf.sub(f, targetFeatures[i])), -1)),
            ),
          )
        : zero;
    const regularization = noiseVars.length > 0 ? noiseAutocorrelation(noiseVars) : zero;
    return tf.stack([pixel, perceptual, regularization]) as tf.Tensor1D;
  };
  const weights = tf.tensor1d([pixelWeight, perceptualWeight, noiseRegularizeWeight]);

  try {
    const losses: number[] = [];
    for (let step = 0; step < steps; step++) {
      if (opts.signal?.aborted) throw new ProjectionCancelledError(step, steps);
      const schedule = projectionSchedule(step, steps, {
        learningRate,
        lrRampup,
        lrRampdown,
        initialNoiseFactor,
        noiseRampLength,
        wStd,
      });
      const parts = tf.tidy(() => {
        let unweighted: tf.Tensor1D | undefined;
        const { grads } = tf.variableGrads(() => {
          const latentNoise = tf.randomNormal(wOpt.shape, 0, 1, 'float32', seed * 1_000_003 + step);
          // Kept past both tidies for the progress report; disposed after it is read.
          unweighted = tf.keep(lossParts(tf.add(wOpt, tf.mul(latentNoise, schedule.noiseScale))));
          return tf.sum(tf.mul(unweighted, weights)) as tf.Scalar;
        }, optimized);
        adam.apply(
          optimized.map((v) => grads[v.name]),
          schedule.learningRate,
        );
        for (const v of noiseVars) {
          const centred = tf.sub(v, tf.mean(v));
          v.assign(tf.mul(centred, tf.rsqrt(tf.mean(tf.square(centred)))));
        }
        return unweighted!;
      });
      const [pixel, perceptual, noiseRegularization] = await parts.data();
      parts.dispose();
      const loss =
        pixelWeight * pixel + perceptualWeight * perceptual + noiseRegularizeWeight * noiseRegularization;
      losses.push(loss);
      if (!opts.onProgress) continue;
      const done = step + 1;
      const preview =
        done % previewEvery === 0 || done === steps ? tf.tidy(() => render(wOpt as tf.Tensor3D)) : undefined;
      try {
        await opts.onProgress({
          step: done,
          steps,
          loss,
          pixel,
          perceptual,
          noiseRegularization,
          learningRate: schedule.learningRate,
          preview,
        });
      } finally {
        preview?.dispose();
      }
    }
    const ws = tf.tidy(() => (wPlus ? tf.clone(wOpt) : tf.tile(wOpt, [1, G.numWs, 1]))) as tf.Tensor3D;
    const finalNoise = noise
      ? new Map([...noise].map(([name, v]) => [name, tf.clone(v) as tf.Tensor2D]))
      : null;
    return { ws, noise: finalNoise, losses, steps, seconds: (performance.now() - started) / 1000 };
  } finally {
    adam.dispose();
    tf.dispose([wOpt, ...noiseVars, targetPixels, ...targetFeatures, weights]);
  }
}

/**
 * Peak signal-to-noise ratio in dB between images in [-1, 1] (both clamped to it), the same number
 * as on 8-bit pixels without the rounding.
 */
export async function psnr(a: tf.Tensor4D, b: tf.Tensor4D): Promise<number> {
  const mse = tf.tidy(() => tf.mean(tf.square(tf.sub(tf.clipByValue(a, -1, 1), tf.clipByValue(b, -1, 1)))));
  const value = (await mse.data())[0];
  mse.dispose();
  return value === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10(4 / value);
}
