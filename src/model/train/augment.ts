// Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
// Networks with Limited Data"): every image D sees, real or generated, goes through the same
// random, differentiable transformations, each applied per sample with probability p, and p is
// steered so that D's confidence on reals stays at a target.
//
// Parameters are drawn on the host from a seeded generator in the order and with the
// distributions of stylegan2-ada-pytorch's AugmentPipe; execution uses only ops whose gradients
// exist (and differentiate again) on every backend: slices, reversals, transposes, concats and
// matMuls. tfjs's MirrorPad gradient is wrong (it drops the reflected contributions) and its
// gather gradient needs UnsortedSegmentSum, which wasm lacks, so neither is used.
//
// Stages, as the official pipeline orders them: pixel blitting (x-flip, 90-degree rotation,
// integer translation, exact), separable geometric transforms (isotropic and anisotropic scaling,
// fractional translation, resampled by per-sample matrices), colour (brightness, contrast, luma
// flip, hue rotation, saturation as one 4x4 matrix per sample). Arbitrary rotation is not
// implemented: it is not separable, and the per-row resampling it needs costs H*W*W per image.
// Over 500 lines: one pipeline whose parameter draws follow AugmentPipe's exact order (seeded runs
// reproduce by it); in one file, that order reads top to bottom.
import { NumpyRandomState } from '../seeds.ts';
import { tf } from '../tf.ts';

/** Probability multipliers (0 disables) and ranges, named as AugmentPipe's arguments. */
export interface AugmentSpec {
  xflip: number;
  rotate90: number;
  xint: number;
  /** Integer translation range, relative to the image size. */
  xintMax: number;
  /** How integer translation fills the uncovered border. */
  xintPad: 'reflect' | 'zero';
  scale: number;
  aniso: number;
  xfrac: number;
  /** log2 standard deviation of isotropic scaling. */
  scaleStd: number;
  /** log2 standard deviation of anisotropic scaling. */
  anisoStd: number;
  /** Standard deviation of fractional translation, relative to the image size. */
  xfracStd: number;
  brightness: number;
  contrast: number;
  lumaflip: number;
  hue: number;
  saturation: number;
  brightnessStd: number;
  /** log2 standard deviation of contrast. */
  contrastStd: number;
  /** Range of hue rotation, 1 = full circle. */
  hueMax: number;
  /** log2 standard deviation of saturation. */
  saturationStd: number;
}

const RANGES = {
  xintMax: 0.125,
  xintPad: 'reflect',
  scaleStd: 0.2,
  anisoStd: 0.2,
  xfracStd: 0.125,
  brightnessStd: 0.2,
  contrastStd: 0.5,
  hueMax: 1,
  saturationStd: 1,
} as const;

const OFF = {
  xflip: 0,
  rotate90: 0,
  xint: 0,
  scale: 0,
  aniso: 0,
  xfrac: 0,
  brightness: 0,
  contrast: 0,
  lumaflip: 0,
  hue: 0,
  saturation: 0,
};

const BLIT = { xflip: 1, rotate90: 1, xint: 1 };
const GEOM = { scale: 1, aniso: 1, xfrac: 1 };
const COLOR = { brightness: 1, contrast: 1, lumaflip: 1, hue: 1, saturation: 1 };

/** The official pipeline presets, less arbitrary rotation (see the header). */
export const AUGMENT_PRESETS = {
  blit: { ...RANGES, ...OFF, ...BLIT },
  geom: { ...RANGES, ...OFF, ...GEOM },
  color: { ...RANGES, ...OFF, ...COLOR },
  bg: { ...RANGES, ...OFF, ...BLIT, ...GEOM },
  bgc: { ...RANGES, ...OFF, ...BLIT, ...GEOM, ...COLOR },
} satisfies Record<string, AugmentSpec>;

export type AugmentPreset = keyof typeof AUGMENT_PRESETS;

/** The transformation drawn for one image. */
export interface SampleAugment {
  xflip: boolean;
  /** Quarter turns, counter-clockwise in the image as displayed (y down). */
  rotate90: 0 | 1 | 2 | 3;
  /** Integer translation in pixels: content moves right by tx and down by ty. */
  tx: number;
  ty: number;
  /** Horizontal and vertical scale factors of the content (isotropic times anisotropic). */
  sx: number;
  sy: number;
  /** Fractional translation in pixels. */
  fx: number;
  fy: number;
  /** Row-major 4x4 homogeneous colour matrix: rgb_out = C[:3,:3] rgb_in + C[:3,3]. */
  color: ColorMatrix;
}

/** The random source: numpy's RandomState interface (uniform [0,1) and standard normal). */
export interface AugmentRandom {
  randomSample(): number;
  gauss(): number;
}

/** Row-major 4x4 homogeneous colour matrix. */
type ColorMatrix = Float64Array<ArrayBufferLike>;

const IDENTITY4: ColorMatrix = Float64Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);

function matMul4(a: ColorMatrix, b: ColorMatrix): ColorMatrix {
  const out = new Float64Array(16);
  for (let i = 0; i < 4; i++)
    for (let j = 0; j < 4; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[i * 4 + k] * b[k * 4 + j];
      out[i * 4 + j] = s;
    }
  return out;
}

// The luma axis (1, 1, 1, 0) / sqrt(3), and its outer product.
const LUMA = [1, 1, 1, 0].map((v) => v / Math.sqrt(3));
const LUMA_OUTER = Float64Array.from({ length: 16 }, (_, k) => LUMA[Math.floor(k / 4)] * LUMA[k % 4]);

function translate3d(b: number): ColorMatrix {
  return Float64Array.from([1, 0, 0, b, 0, 1, 0, b, 0, 0, 1, b, 0, 0, 0, 1]);
}

function scale3d(c: number): ColorMatrix {
  return Float64Array.from([c, 0, 0, 0, 0, c, 0, 0, 0, 0, c, 0, 0, 0, 0, 1]);
}

/** Householder reflection through the plane orthogonal to the luma axis. */
function lumaFlip(): ColorMatrix {
  return IDENTITY4.map((v, k) => v - 2 * LUMA_OUTER[k]);
}

/** Rotation by theta around the luma axis (Rodrigues). */
function rotateAroundLuma(theta: number): ColorMatrix {
  const [vx, vy, vz] = LUMA;
  const s = Math.sin(theta);
  const c = Math.cos(theta);
  const cc = 1 - c;
  return Float64Array.from([
    vx * vx * cc + c,
    vx * vy * cc - vz * s,
    vx * vz * cc + vy * s,
    0,
    vy * vx * cc + vz * s,
    vy * vy * cc + c,
    vy * vz * cc - vx * s,
    0,
    vz * vx * cc - vy * s,
    vz * vy * cc + vx * s,
    vz * vz * cc + c,
    0,
    0,
    0,
    0,
    1,
  ]);
}

/** Keeps the luma component and scales the chroma by s. */
function saturate(s: number): ColorMatrix {
  return LUMA_OUTER.map((v, k) => v + (IDENTITY4[k] - v) * s);
}

/**
 * Draws the per-image transformations for a batch: operation `op` applies to an image with
 * probability spec[op] * p. Every value is drawn whether or not it applies, so the stream of
 * random numbers, and with it the transformations at a given p, do not depend on p's history.
 */
export function sampleAugment(
  spec: AugmentSpec,
  p: number,
  batch: number,
  size: { height: number; width: number },
  rng: AugmentRandom,
): SampleAugment[] {
  const coin = (multiplier: number) => rng.randomSample() < multiplier * p;
  return Array.from({ length: batch }, () => {
    const s: SampleAugment = {
      xflip: false,
      rotate90: 0,
      tx: 0,
      ty: 0,
      sx: 1,
      sy: 1,
      fx: 0,
      fy: 0,
      color: IDENTITY4,
    };
    if (spec.xflip > 0) {
      const flip = rng.randomSample() < 0.5;
      s.xflip = coin(spec.xflip) && flip;
    }
    if (spec.rotate90 > 0) {
      const quarter = Math.floor(rng.randomSample() * 4) as 0 | 1 | 2 | 3;
      s.rotate90 = coin(spec.rotate90) ? quarter : 0;
    }
    if (spec.xint > 0) {
      const tx = (rng.randomSample() * 2 - 1) * spec.xintMax;
      const ty = (rng.randomSample() * 2 - 1) * spec.xintMax;
      if (coin(spec.xint)) {
        // +0 turns the -0 of rounding small negative shifts into 0
        s.tx = Math.round(tx * size.width) + 0;
        s.ty = Math.round(ty * size.height) + 0;
      }
    }
    if (spec.scale > 0) {
      const scale = 2 ** (rng.gauss() * spec.scaleStd);
      if (coin(spec.scale)) {
        s.sx *= scale;
        s.sy *= scale;
      }
    }
    if (spec.aniso > 0) {
      const aniso = 2 ** (rng.gauss() * spec.anisoStd);
      if (coin(spec.aniso)) {
        s.sx *= aniso;
        s.sy /= aniso;
      }
    }
    if (spec.xfrac > 0) {
      const fx = rng.gauss() * spec.xfracStd;
      const fy = rng.gauss() * spec.xfracStd;
      if (coin(spec.xfrac)) {
        s.fx = fx * size.width;
        s.fy = fy * size.height;
      }
    }
    let c: ColorMatrix = IDENTITY4;
    if (spec.brightness > 0) {
      const b = rng.gauss() * spec.brightnessStd;
      if (coin(spec.brightness)) c = matMul4(translate3d(b), c);
    }
    if (spec.contrast > 0) {
      const k = 2 ** (rng.gauss() * spec.contrastStd);
      if (coin(spec.contrast)) c = matMul4(scale3d(k), c);
    }
    if (spec.lumaflip > 0) {
      const flip = rng.randomSample() < 0.5;
      if (coin(spec.lumaflip) && flip) c = matMul4(lumaFlip(), c);
    }
    if (spec.hue > 0) {
      const theta = (rng.randomSample() * 2 - 1) * Math.PI * spec.hueMax;
      if (coin(spec.hue)) c = matMul4(rotateAroundLuma(theta), c);
    }
    if (spec.saturation > 0) {
      const k = 2 ** (rng.gauss() * spec.saturationStd);
      if (coin(spec.saturation)) c = matMul4(saturate(k), c);
    }
    s.color = c;
    return s;
  });
}

function isBlitIdentity(s: SampleAugment): boolean {
  return !s.xflip && s.rotate90 === 0 && s.tx === 0 && s.ty === 0;
}

function isGeomIdentity(s: SampleAugment): boolean {
  return s.sx === 1 && s.sy === 1 && s.fx === 0 && s.fy === 0;
}

function isColorIdentity(s: SampleAugment): boolean {
  return s.color.every((v, k) => v === IDENTITY4[k]);
}

/** Reflect padding ("reflect": the edge pixel is not repeated) of H and W by `m`, from slices. */
export function reflectPad(x: tf.Tensor4D, m: number): tf.Tensor4D {
  if (m === 0) return x;
  const [n, h, w, c] = x.shape;
  if (m >= h || m >= w)
    throw new RangeError(`reflect padding ${m} needs an image larger than ${m}, got ${h}x${w}`);
  const rows = tf.concat(
    [
      tf.reverse(tf.slice(x, [0, 1, 0, 0], [n, m, w, c]), 1),
      x,
      tf.reverse(tf.slice(x, [0, h - 1 - m, 0, 0], [n, m, w, c]), 1),
    ],
    1,
  );
  const hp = h + 2 * m;
  return tf.concat(
    [
      tf.reverse(tf.slice(rows, [0, 0, 1, 0], [n, hp, m, c]), 2),
      rows,
      tf.reverse(tf.slice(rows, [0, 0, w - 1 - m, 0], [n, hp, m, c]), 2),
    ],
    2,
  );
}

/** Quarter turns counter-clockwise as displayed (row 0 at the top). */
function rotate90(x: tf.Tensor4D, quarters: number): tf.Tensor4D {
  switch (quarters % 4) {
    case 1:
      return tf.reverse(tf.transpose(x, [0, 2, 1, 3]), 1);
    case 2:
      return tf.reverse(x, [1, 2]);
    case 3:
      return tf.reverse(tf.transpose(x, [0, 2, 1, 3]), 2);
    default:
      return x;
  }
}

/** x-flip, then rotation, then integer translation, per image. */
function blit(x: tf.Tensor4D, params: SampleAugment[], pad: 'reflect' | 'zero'): tf.Tensor4D {
  if (params.every(isBlitIdentity)) return x;
  const [n, h, w, c] = x.shape;
  const margin = Math.max(...params.map((s) => Math.max(Math.abs(s.tx), Math.abs(s.ty))));
  const images = params.map((s, i) => {
    let img = tf.slice(x, [i, 0, 0, 0], [1, h, w, c]);
    if (isBlitIdentity(s)) return img;
    if (s.xflip) img = tf.reverse(img, 2);
    img = rotate90(img, s.rotate90);
    if (s.tx !== 0 || s.ty !== 0) {
      const padded =
        pad === 'reflect'
          ? reflectPad(img, margin)
          : tf.pad(img, [
              [0, 0],
              [margin, margin],
              [margin, margin],
              [0, 0],
            ]);
      img = tf.slice(padded, [0, margin - s.ty, margin - s.tx, 0], [1, h, w, c]);
    }
    return img;
  });
  tf.util.assert(images.length === n, () => 'blit: one parameter set per image');
  return tf.concat(images, 0);
}

/** numpy-style reflection of an index into [0, size). */
function reflectIndex(i: number, size: number): number {
  if (size === 1) return 0;
  const period = 2 * (size - 1);
  const r = ((i % period) + period) % period;
  return r < size ? r : period - r;
}

/**
 * [size, size] resampling matrix of one axis: out[j] = sum_i M[j, i] in[i], content scaled by
 * `scale` about the centre and moved by `shift` pixels. Linear interpolation widened to 1/scale
 * input pixels when shrinking, so that minification averages rather than aliases.
 */
export function resampleMatrix(size: number, scale: number, shift: number): Float32Array {
  const m = new Float32Array(size * size);
  const centre = (size - 1) / 2;
  const support = Math.max(1, 1 / scale);
  for (let j = 0; j < size; j++) {
    const source = (j - centre - shift) / scale + centre;
    const lo = Math.ceil(source - support);
    const hi = Math.floor(source + support);
    let total = 0;
    const weights: Array<[number, number]> = [];
    for (let i = lo; i <= hi; i++) {
      const weight = 1 - Math.abs(i - source) / support;
      if (weight <= 0) continue;
      weights.push([reflectIndex(i, size), weight]);
      total += weight;
    }
    for (const [i, weight] of weights) m[j * size + i] += weight / total;
  }
  return m;
}

/** Scaling and fractional translation, one resampling matrix per axis and image. */
function geometric(x: tf.Tensor4D, params: SampleAugment[]): tf.Tensor4D {
  if (params.every(isGeomIdentity)) return x;
  const [n, h, w, c] = x.shape;
  const rows = new Float32Array(n * h * h);
  const cols = new Float32Array(n * w * w);
  params.forEach((s, i) => {
    rows.set(resampleMatrix(h, s.sy, s.fy), i * h * h);
    cols.set(resampleMatrix(w, s.sx, s.fx), i * w * w);
  });
  // Rows: [N, H, H] @ [N, H, W*C]; columns: [N, W, W] @ [N, W, H*C] after moving W first.
  const alongH = tf.matMul(tf.tensor3d(rows, [n, h, h]), tf.reshape(x, [n, h, w * c]) as tf.Tensor3D);
  const wFirst = tf.reshape(tf.transpose(tf.reshape(alongH, [n, h, w, c]), [0, 2, 1, 3]), [n, w, h * c]);
  const alongW = tf.matMul(tf.tensor3d(cols, [n, w, w]), wFirst as tf.Tensor3D);
  return tf.transpose(tf.reshape(alongW, [n, w, h, c]), [0, 2, 1, 3]) as tf.Tensor4D;
}

/** Applies each image's 4x4 colour matrix to its RGB (or, for one channel, its mean row). */
function colour(x: tf.Tensor4D, params: SampleAugment[]): tf.Tensor4D {
  if (params.every(isColorIdentity)) return x;
  const [n, h, w, c] = x.shape;
  if (c === 3) {
    // rgb_out (row vector) = rgb_in @ C[:3,:3]^T + C[:3,3]
    const linear = new Float32Array(n * 9);
    const offset = new Float32Array(n * 3);
    params.forEach((s, i) => {
      for (let r = 0; r < 3; r++) {
        for (let k = 0; k < 3; k++) linear[i * 9 + k * 3 + r] = s.color[r * 4 + k];
        offset[i * 3 + r] = s.color[r * 4 + 3];
      }
    });
    const pixels = tf.reshape(x, [n, h * w, 3]) as tf.Tensor3D;
    const out = tf.add(tf.matMul(pixels, tf.tensor3d(linear, [n, 3, 3])), tf.tensor3d(offset, [n, 1, 3]));
    return tf.reshape(out, [n, h, w, 3]);
  }
  if (c === 1) {
    // As the official pipeline: the mean of the three output rows acting on a grey input.
    const gain = new Float32Array(n);
    const offset = new Float32Array(n);
    params.forEach((s, i) => {
      for (let r = 0; r < 3; r++) {
        gain[i] += (s.color[r * 4] + s.color[r * 4 + 1] + s.color[r * 4 + 2]) / 3;
        offset[i] += s.color[r * 4 + 3] / 3;
      }
    });
    return tf.add(tf.mul(x, tf.tensor4d(gain, [n, 1, 1, 1])), tf.tensor4d(offset, [n, 1, 1, 1]));
  }
  throw new Error(`colour augmentation needs 1 or 3 channels, got ${c}`);
}

/** Applies drawn transformations to NHWC images in [-1, 1]; differentiable in the images. */
export function applyAugment(
  images: tf.Tensor4D,
  params: SampleAugment[],
  pad: 'reflect' | 'zero' = 'reflect',
): tf.Tensor4D {
  if (params.length !== images.shape[0]) {
    throw new Error(`augment: ${params.length} parameter sets for a batch of ${images.shape[0]}`);
  }
  return tf.tidy(() => colour(geometric(blit(images, params, pad), params), params));
}

/** The augmentation pipeline with its probability p and its own random stream. */
export class AugmentPipe {
  p = 0;
  private readonly rng: AugmentRandom;

  constructor(
    readonly spec: AugmentSpec,
    seedOrRandom: number | AugmentRandom = 0,
  ) {
    this.rng = typeof seedOrRandom === 'number' ? new NumpyRandomState(seedOrRandom) : seedOrRandom;
  }

  /** Draws this batch's transformations and applies them; p = 0 returns the images unchanged. */
  apply(images: tf.Tensor4D): tf.Tensor4D {
    if (this.p <= 0) return images;
    const [n, h, w] = images.shape;
    const params = sampleAugment(this.spec, this.p, n, { height: h, width: w }, this.rng);
    return applyAugment(images, params, this.spec.xintPad);
  }
}

export interface AdaptiveAugmentOptions {
  /** E[sign(D(real))] that p steers towards (official ada_target). */
  target?: number;
  /** Adjust p every this many steps (official ada_interval). */
  interval?: number;
  /** Images over which p can move from 0 to 1, in thousands (official ada_kimg; 100 when resuming). */
  kimg?: number;
  initialP?: number;
}

/**
 * The ADA controller: collects the sign of D's real logits and every `interval` steps moves p by
 * sign(r_t - target) * (images since the last move) / (kimg * 1000), clamped to [0, 1].
 */
export class AdaptiveAugment {
  p: number;
  readonly target: number;
  readonly interval: number;
  readonly kimg: number;
  /** r_t of the last adjustment, null before the first. */
  lastRt: number | null = null;
  private signSum = 0;
  private images = 0;
  private steps = 0;

  constructor(opts: AdaptiveAugmentOptions = {}) {
    this.target = opts.target ?? 0.6;
    this.interval = opts.interval ?? 4;
    this.kimg = opts.kimg ?? 500;
    this.p = opts.initialP ?? 0;
    if (!(this.interval >= 1) || !(this.kimg > 0) || !(this.p >= 0 && this.p <= 1)) {
      throw new RangeError('adaptive augment: interval >= 1, kimg > 0 and 0 <= p <= 1 are required');
    }
  }

  /** Records one step's mean sign(D(real)) over `batchSize` reals; returns p after the step. */
  update(signRealMean: number, batchSize: number): number {
    if (!Number.isFinite(signRealMean) || !(batchSize > 0)) {
      throw new RangeError(`adaptive augment: bad step statistics (${signRealMean}, ${batchSize})`);
    }
    this.signSum += signRealMean * batchSize;
    this.images += batchSize;
    this.steps++;
    if (this.steps >= this.interval) {
      const rt = this.signSum / this.images;
      const adjust = (Math.sign(rt - this.target) * this.images) / (this.kimg * 1000);
      this.p = Math.min(1, Math.max(0, this.p + adjust));
      this.lastRt = rt;
      this.signSum = 0;
      this.images = 0;
      this.steps = 0;
    }
    return this.p;
  }

  /** Everything a snapshot needs to resume the controller mid-interval. */
  state(): AdaptiveAugmentState {
    return { p: this.p, lastRt: this.lastRt, signSum: this.signSum, images: this.images, steps: this.steps };
  }

  restore(s: AdaptiveAugmentState): void {
    this.p = s.p;
    this.lastRt = s.lastRt;
    this.signSum = s.signSum;
    this.images = s.images;
    this.steps = s.steps;
  }
}

export interface AdaptiveAugmentState {
  p: number;
  lastRt: number | null;
  signSum: number;
  images: number;
  steps: number;
}
