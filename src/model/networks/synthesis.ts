import { type GeneratorConfig, type NoiseMode, numWs } from '../config.ts';
import { ACTIVATION_GAIN, type BiasActOptions, biasAct } from '../ops/bias_act.ts';
import { conv2d, conv2dResample, derivedFromWeight } from '../ops/conv.ts';
import { upsample2d } from '../ops/upfirdn2d.ts';
import { dense } from '../ops/webgpu/dense.ts';
import { modulate } from '../ops/webgpu/modulate.ts';
import type { ParamStore } from '../params.ts';
import { tf } from '../tf.ts';
import { assertShape, broadcastCopies, FullyConnectedLayer, Module } from './layers.ts';
import { type SynthesisBlockShape, synthesisBlocks } from './specs.ts';

export interface SynthesisOptions {
  noiseMode?: NoiseMode;
  /**
   * With noiseMode 'random': draws each layer's noise from a seed derived from this one, so a
   * training round gives the same images wherever it runs (the round threads of phases.ts) and a
   * resumed run repeats its draws. Unseeded draws when absent.
   */
  noiseSeed?: number;
}

/** Seed of the noise of synthesis layer `layer` (0 = the first) from the pass's noise seed. */
export function layerNoiseSeed(noiseSeed: number, layer: number): number {
  return ((noiseSeed ^ Math.imul(layer + 1, 2_246_822_519)) >>> 0) % 2 ** 31;
}

/** x [N,H,W,I] times the styles [N,I] per sample and channel (on webgpu one program each way). */
function modulateInput(x: tf.Tensor4D, styles: tf.Tensor2D): tf.Tensor4D {
  if (tf.getBackend() === 'webgpu') return modulate(x, styles);
  const [n, , , c] = x.shape;
  return tf.mul(x, tf.reshape(styles, [n, 1, 1, c]));
}

/**
 * Modulated convolution in its non-fused form (scale activations by the style, plain convolution,
 * scale by the demodulation coefficients): the same function as the official fused grouped
 * convolution, without needing grouped convs, and the form the official code trains with.
 */
export function modulatedConv2d(
  x: tf.Tensor4D,
  weight: tf.Tensor4D,
  styles: tf.Tensor2D,
  opts: {
    demodulate: boolean;
    up?: 1 | 2;
    padding: number;
    flipWeight: boolean;
    noise?: tf.Tensor | null;
    /** Multiplies `noise` (in the epilogue's pass). */
    noiseStrength?: tf.Tensor | null;
    /** The layer's bias_act after the noise, fused with demodulation and noise where the backend can. */
    epilogue?: { bias: tf.Tensor | null } & BiasActOptions;
  },
): tf.Tensor4D {
  const [n, , , inChannels] = x.shape;
  const [, , wi, outChannels] = weight.shape;
  tf.util.assert(
    wi === inChannels && styles.shape[1] === inChannels,
    () => `modulatedConv2d: channel mismatch`,
  );
  let y = modulateInput(x, styles);
  y = conv2dResample(y, weight, { up: opts.up ?? 1, padding: opts.padding, flipWeight: opts.flipWeight });
  let demodSquareSum: tf.Tensor | null = null;
  if (opts.demodulate) {
    // sum over (i, kh, kw) of (w * s_i)^2 = s^2 @ sum_{kh,kw} w^2, an [N,I] x [I,O] product; the
    // epilogue scales by 1 / sqrt(it + 1e-8) (on webgpu inside its one pass).
    demodSquareSum = tf.reshape(demodulationSquareSum(weight, styles), [n, 1, 1, outChannels]);
  }
  const { bias = null, ...act } = opts.epilogue ?? { bias: null, act: 'linear' as const, gain: 1 };
  return biasAct(y, bias, {
    ...act,
    demodSquareSum,
    noise: opts.noise ?? null,
    noiseStrength: opts.noiseStrength ?? null,
  });
}

/**
 * sum over (i, kh, kw) of (w * s_i)^2 = s^2 @ sum_{kh,kw} w^2: [N, O]. On webgpu one dispatch each
 * (the squares taken in the products' passes), elsewhere tfjs ops; the weight's sum is built once
 * per weight value outside gradient tapes.
 */
function demodulationSquareSum(weight: tf.Tensor4D, styles: tf.Tensor2D): tf.Tensor2D {
  const [kh, kw, inChannels, outChannels] = weight.shape;
  if (tf.getBackend() !== 'webgpu') {
    const [wSquareSum] = derivedFromWeight(weight, 'squareSum', () => [tf.sum(tf.square(weight), [0, 1])]);
    return tf.matMul(tf.square(styles), wSquareSum as tf.Tensor2D);
  }
  const plain = { transposeA: false, transposeB: false, alpha: 1, beta: 0, slope: 1, gain: 1 };
  const [wSquareSum] = derivedFromWeight(weight, 'squareSum', () => {
    const taps = tf.ones([1, kh * kw]) as tf.Tensor2D;
    const perTap = tf.reshape(weight, [kh * kw, inChannels * outChannels]) as tf.Tensor2D;
    return [tf.reshape(dense(taps, perTap, { ...plain, square: 'b' }), [inChannels, outChannels])];
  });
  return dense(styles, wSquareSum as tf.Tensor2D, { ...plain, square: 'a' });
}

export interface SynthesisLayerOptions {
  wDim: number;
  /** Output resolution. */
  resolution: number;
  /** 2 doubles the resolution (the first conv of each block above 4x4). */
  up?: 1 | 2;
  convClamp: number | null;
}

/** Modulated 3x3 conv + noise + bias + leaky ReLU + clamp. */
export class SynthesisLayer extends Module {
  readonly affine: FullyConnectedLayer;
  readonly resolution: number;
  readonly up: 1 | 2;
  readonly convClamp: number | null;
  constructor(
    prefix: string,
    readonly inChannels: number,
    readonly outChannels: number,
    { wDim, resolution, up = 1, convClamp }: SynthesisLayerOptions,
  ) {
    super(prefix);
    this.resolution = resolution;
    this.up = up;
    this.convClamp = convClamp;
    this.affine = new FullyConnectedLayer(`${prefix}affine.`, wDim, inChannels);
  }

  /** noiseSeed: this layer's seed for noiseMode 'random' (unseeded when undefined). */
  forward(
    params: ParamStore,
    x: tf.Tensor4D,
    w: tf.Tensor2D,
    noiseMode: NoiseMode,
    gain = 1,
    noiseSeed?: number,
  ): tf.Tensor4D {
    const n = x.shape[0];
    assertShape(
      x,
      [n, this.resolution / this.up, this.resolution / this.up, this.inChannels],
      `${this.prefix} input`,
    );
    const styles = this.affine.forward(params, w);
    let noise: tf.Tensor | null = null;
    const r = this.resolution;
    if (noiseMode === 'random') {
      noise = tf.randomNormal([n, r, r, 1], 0, 1, 'float32', noiseSeed);
    } else if (noiseMode === 'const') {
      noise = tf.reshape(this.p(params, 'noise_const'), [1, r, r, 1]);
    }
    return modulatedConv2d(x, this.p(params, 'weight') as tf.Tensor4D, styles, {
      demodulate: true,
      up: this.up,
      padding: 1,
      flipWeight: this.up === 1,
      noise,
      noiseStrength: noise ? this.p(params, 'noise_strength') : null,
      epilogue: {
        bias: this.p(params, 'bias'),
        act: 'lrelu',
        gain: ACTIVATION_GAIN.lrelu * gain,
        clamp: this.convClamp == null ? null : this.convClamp * gain,
      },
    });
  }
}

/** Modulated 1x1 conv to RGB without demodulation; its output is summed into the skip image. */
export class ToRGBLayer extends Module {
  readonly affine: FullyConnectedLayer;
  readonly weightGain: number;
  readonly convClamp: number | null;
  constructor(
    prefix: string,
    readonly inChannels: number,
    readonly outChannels: number,
    { wDim, convClamp }: { wDim: number; convClamp: number | null },
  ) {
    super(prefix);
    this.convClamp = convClamp;
    this.affine = new FullyConnectedLayer(`${prefix}affine.`, wDim, inChannels);
    this.weightGain = 1 / Math.sqrt(inChannels);
  }

  forward(params: ParamStore, x: tf.Tensor4D, w: tf.Tensor2D): tf.Tensor4D {
    const styles = this.affine.forward(params, w, this.weightGain);
    let y = modulateInput(x, styles);
    y = conv2d(y, this.p(params, 'weight') as tf.Tensor4D);
    return biasAct(y, this.p(params, 'bias'), { act: 'linear', clamp: this.convClamp });
  }
}

/** One resolution of the `skip` synthesis network: (const | conv0 up) + conv1 + torgb. */
export class SynthesisBlock extends Module {
  readonly conv0: SynthesisLayer | null;
  readonly conv1: SynthesisLayer;
  readonly torgb: ToRGBLayer;
  /** ws consumed by the convs; torgb reads the next one, shared with the following block's conv0. */
  readonly numConv: number;

  readonly resolution: number;

  constructor(
    { resolution, inChannels, outChannels }: SynthesisBlockShape,
    readonly cfg: GeneratorConfig,
  ) {
    super(`synthesis.b${resolution}.`);
    this.resolution = resolution;
    const { wDim, convClamp } = cfg;
    this.conv0 =
      inChannels === 0
        ? null
        : new SynthesisLayer(`${this.prefix}conv0.`, inChannels, outChannels, {
            wDim,
            resolution,
            up: 2,
            convClamp,
          });
    this.conv1 = new SynthesisLayer(`${this.prefix}conv1.`, outChannels, outChannels, {
      wDim,
      resolution,
      convClamp,
    });
    this.torgb = new ToRGBLayer(`${this.prefix}torgb.`, outChannels, cfg.imgChannels, { wDim, convClamp });
    this.numConv = inChannels === 0 ? 1 : 2;
  }

  /** ws: this block's numConv + 1 w vectors, [N, k, w_dim]; layerSeeds: its layers' noise seeds. */
  forward(
    params: ParamStore,
    x: tf.Tensor4D | null,
    img: tf.Tensor4D | null,
    ws: tf.Tensor2D[],
    noiseMode: NoiseMode,
    layerSeeds: (number | undefined)[] = [],
  ): { x: tf.Tensor4D; img: tf.Tensor4D } {
    tf.util.assert(ws.length === this.numConv + 1, () => `${this.prefix}: expected ${this.numConv + 1} ws`);
    const n = ws[0].shape[0];
    let h: tf.Tensor4D;
    if (this.conv0 === null) {
      const c = this.p(params, 'const');
      h = broadcastCopies(tf.expandDims(c, 0) as tf.Tensor4D, [n, ...c.shape]);
      h = this.conv1.forward(params, h, ws[0], noiseMode, 1, layerSeeds[0]);
    } else {
      tf.util.assert(x !== null, () => `${this.prefix}: missing input features`);
      h = this.conv0.forward(params, x!, ws[0], noiseMode, 1, layerSeeds[0]);
      h = this.conv1.forward(params, h, ws[1], noiseMode, 1, layerSeeds[1]);
    }
    const rgb = this.torgb.forward(params, h, ws[this.numConv]);
    const out = img ? tf.add(upsample2d(img), rgb) : rgb;
    return { x: h, img: out as tf.Tensor4D };
  }
}

/** ws [N, num_ws, w_dim] -> images [N, res, res, img_channels] (NHWC, roughly in [-1, 1]). */
export class SynthesisNetwork extends Module {
  readonly blocks: SynthesisBlock[];
  readonly numWs: number;

  constructor(readonly cfg: GeneratorConfig) {
    super('synthesis.');
    this.blocks = synthesisBlocks(cfg).map((shape) => new SynthesisBlock(shape, cfg));
    this.numWs = numWs(cfg.resolution);
    tf.util.assert(
      this.blocks.reduce((a, b) => a + b.numConv, 0) + 1 === this.numWs,
      () => 'num_ws bookkeeping does not add up',
    );
  }

  /** Index of the first w each block reads. */
  blockWsOffsets(): number[] {
    const offsets: number[] = [];
    let idx = 0;
    for (const b of this.blocks) {
      offsets.push(idx);
      idx += b.numConv;
    }
    return offsets;
  }

  forward(params: ParamStore, ws: tf.Tensor3D, opts: SynthesisOptions = {}): tf.Tensor4D {
    const noiseMode = opts.noiseMode ?? 'const';
    assertShape(ws, [null, this.numWs, this.cfg.wDim], 'synthesis input ws');
    const perLayer = tf.unstack(ws, 1) as tf.Tensor2D[];
    const offsets = this.blockWsOffsets();
    let x: tf.Tensor4D | null = null;
    let img: tf.Tensor4D | null = null;
    try {
      // One scope per block, freeing the previous block's outputs as soon as the next exist: at
      // 256x256 and batch 8 the intermediates of a whole pass would not fit wasm's 4 GiB heap.
      // (Under a gradient tape this is safe too: the tape keeps its own copies of what it needs.)
      for (const [i, block] of this.blocks.entries()) {
        const blockWs = perLayer.slice(offsets[i], offsets[i] + block.numConv + 1);
        // The block's conv layers are synthesis layers offsets[i], offsets[i] + 1.
        const layerSeeds = Array.from({ length: block.numConv }, (_, k) =>
          opts.noiseSeed === undefined ? undefined : layerNoiseSeed(opts.noiseSeed, offsets[i] + k),
        );
        const out: { x: tf.Tensor4D; img: tf.Tensor4D } = tf.tidy(() =>
          block.forward(params, x, img, blockWs, noiseMode, layerSeeds),
        );
        x?.dispose();
        img?.dispose();
        ({ x, img } = out);
      }
      (x as tf.Tensor4D | null)?.dispose();
      return img!;
    } finally {
      tf.dispose(perLayer);
    }
  }
}
