// The StyleGAN2 generator (mapping with truncation, `skip` synthesis) as an ONNX graph, NCHW, with a
// dynamic batch axis and the checkpoint's weights as initializers, the equalised-lr gains baked in.
// Same function as networks/*.ts and NVlabs' networks_stylegan2.py:
// - modulated convs in the non-fused form (x * styles, one shared-weight Conv, times the per-sample
//   demodulation coefficients from styles^2 @ sum_{kh,kw} w^2): exact and batch-dynamic, no grouped conv;
// - the up-sampling conv as the official conv2d_resample: ConvTranspose stride 2 with the unflipped
//   [I,O,3,3] weight, then the 4x4 FIR (gain 4) as a depthwise Conv padded by 1;
// - the skip image up-sampled as upfirdn2d(up=2, pad [2,1]): a depthwise ConvTranspose cropping 1.

import { UserError } from '../../errors.ts';
import { listNames } from '../checkpoint/format.ts';
import { tfShapeOf } from '../checkpoint/layout.ts';
import { generatorTorchShapes } from '../checkpoint/tensors.ts';
import { channelsAt, type GeneratorConfig, numWs, synthesisResolutions } from '../config.ts';
import { depthwiseFilter, GraphBuilder, permuteKernel, scaled } from './graph-builder.ts';
import { type Dim, encodeModel } from './protobuf.ts';

/** The generator's tensors in our (tfjs) layouts, read out of a ParamStore or a checkpoint. */
export type GeneratorWeights = Map<string, { shape: number[]; data: Float32Array }>;

/** const: the checkpoint's noise_const buffers; none: no noise; random: an input per layer. */
export type OnnxNoiseMode = 'const' | 'none' | 'random';

/** generator: z, psi -> img; mapping: z, psi -> ws; synthesis: ws -> img. */
export type GraphPart = 'generator' | 'mapping' | 'synthesis';

export interface GeneratorGraphOptions {
  part?: GraphPart;
  noise?: OnnxNoiseMode;
  /** Written into the model's doc_string (the checkpoint name, for whoever opens the file). */
  description?: string;
}

export class OnnxExportError extends UserError {
  override name = 'OnnxExportError';
}

const KNOWN_CONFIG_FIELDS = new Set<string>([
  'resolution',
  'zDim',
  'wDim',
  'mappingLayers',
  'channelBase',
  'channelMax',
  'convClamp',
  'imgChannels',
  'mappingLrMultiplier',
]);

const BATCH: Dim = 'N';
const LRELU_ALPHA = 0.2;
const LRELU_GAIN = Math.SQRT2;
const DEMOD_EPS = 1e-8;

/** Name of the unit-normal noise input of one synthesis layer in `random` noise mode. */
export function noiseInputName(layerPrefix: string): string {
  return `noise_${layerPrefix
    .replace(/^synthesis\./, '')
    .replace(/\.$/, '')
    .replaceAll('.', '_')}`;
}

/**
 * Refuses anything but the architecture the graph implements, naming what differs: unknown config
 * fields (an architecture option this code does not know), missing, unexpected or misshapen tensors.
 */
export function assertSupportedGenerator(cfg: GeneratorConfig, weights: GeneratorWeights): void {
  const unknownFields = Object.keys(cfg).filter((k) => !KNOWN_CONFIG_FIELDS.has(k));
  if (unknownFields.length > 0) {
    throw new OnnxExportError(
      `unsupported generator architecture: unknown config field(s) ${listNames(unknownFields)}`,
      'only the official StyleGAN2 generator (skip architecture, unconditional) can run on ONNX',
    );
  }
  const expected = generatorTorchShapes(cfg);
  const missing = [...expected.keys()].filter((n) => !weights.has(n));
  const unexpected = [...weights.keys()].filter((n) => !expected.has(n));
  if (unexpected.length > 0) {
    throw new OnnxExportError(
      `unsupported generator architecture: unexpected tensor(s) ${listNames(unexpected)}`,
      'only the official StyleGAN2 generator (skip architecture, unconditional) can run on ONNX',
    );
  }
  if (missing.length > 0)
    throw new OnnxExportError(`unsupported generator: missing tensor(s) ${listNames(missing)}`);
  for (const [name, torchShape] of expected) {
    const want = tfShapeOf(name, torchShape);
    const got = weights.get(name)!.shape;
    if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
      throw new OnnxExportError(
        `unsupported generator: tensor ${name} has shape [${got}] but the config needs [${want}]`,
      );
    }
  }
}

function weight(weights: GeneratorWeights, name: string): { shape: number[]; data: Float32Array } {
  const w = weights.get(name);
  if (!w) throw new OnnxExportError(`unsupported generator: missing tensor ${name}`);
  return w;
}

/** Equalised-lr FC: x @ (W * lr/sqrt(in) * outGain) + b * lr * outGain. */
function fullyConnected(
  g: GraphBuilder,
  weights: GeneratorWeights,
  prefix: string,
  x: string,
  lrMultiplier: number,
  outGain = 1,
): string {
  const w = weight(weights, `${prefix}weight`);
  const b = weight(weights, `${prefix}bias`);
  const wGain = (lrMultiplier / Math.sqrt(w.shape[0])) * outGain;
  const wName = g.floats(`${prefix}weight`, w.shape, scaled(w.data, wGain));
  const bName = g.floats(`${prefix}bias`, b.shape, scaled(b.data, lrMultiplier * outGain));
  return g.op('Add', [g.op('MatMul', [x, wName], `${prefix}matmul`), bName], `${prefix}out`);
}

function buildMapping(
  g: GraphBuilder,
  cfg: GeneratorConfig,
  weights: GeneratorWeights,
  z: string,
  psi: string,
): string {
  const sq = g.op('Mul', [z, z], 'mapping.z_sq');
  const meanSq = g.op('ReduceMean', [sq], 'mapping.z_mean_sq', { axes: [1], keepdims: 1 });
  const norm = g.op(
    'Sqrt',
    [g.op('Add', [meanSq, g.scalar('mapping.eps', 1e-8)], 'mapping.z_mean_sq_eps')],
    'mapping.z_rms',
  );
  let x = g.op('Div', [z, norm], 'mapping.z_normalized');
  for (let i = 0; i < cfg.mappingLayers; i++) {
    const prefix = `mapping.fc${i}.`;
    // lrelu(y) * sqrt(2) = lrelu(sqrt(2) y): the gain is folded into the layer's weights.
    x = g.op(
      'LeakyRelu',
      [fullyConnected(g, weights, prefix, x, cfg.mappingLrMultiplier, LRELU_GAIN)],
      `${prefix}lrelu`,
      {
        alpha: LRELU_ALPHA,
      },
    );
  }
  const wAvg = weight(weights, 'mapping.w_avg');
  const avg = g.floats('mapping.w_avg', wAvg.shape, wAvg.data);
  // w_avg + psi (w - w_avg), psi a [1] input: psi = 1 gives the untruncated w.
  const truncated = g.op(
    'Add',
    [avg, g.op('Mul', [g.op('Sub', [x, avg], 'mapping.w_centered'), psi], 'mapping.w_scaled')],
    'mapping.w',
  );
  const unsqueezed = g.op('Unsqueeze', [truncated, g.int64s('axes_1', [1])], 'mapping.w_unsqueezed');
  return g.op(
    'Expand',
    [unsqueezed, g.int64s('mapping.broadcast_shape', [1, numWs(cfg.resolution), 1])],
    'mapping.ws',
    undefined,
    'ws',
  );
}

interface LayerSpec {
  prefix: string;
  inChannels: number;
  outChannels: number;
  resolution: number;
  up: 1 | 2;
}

class SynthesisGraph {
  private readonly wCache = new Map<number, string>();
  private readonly axes23: string;

  constructor(
    private readonly g: GraphBuilder,
    private readonly cfg: GeneratorConfig,
    private readonly weights: GeneratorWeights,
    private readonly ws: string,
    private readonly noise: OnnxNoiseMode,
  ) {
    this.axes23 = g.int64s('axes_2_3', [2, 3]);
  }

  /** w of layer `index`: ws[:, index, :] as [N, w_dim]. */
  private w(index: number): string {
    let name = this.wCache.get(index);
    if (!name) {
      name = this.g.op('Gather', [this.ws, this.g.int64s(`ws_index_${index}`, [index])], `w${index}_slice`, {
        axis: 1,
      });
      name = this.g.op('Squeeze', [name, this.g.int64s('axes_1', [1])], `w${index}`);
      this.wCache.set(index, name);
    }
    return name;
  }

  private perChannel(x: string, name: string): string {
    return this.g.op('Unsqueeze', [x, this.axes23], name);
  }

  /**
   * Bias, then leaky ReLU, then clamp. The activation gain is already folded into the values
   * feeding it (`gain` scales the bias here): lrelu(g y) = g lrelu(y) for g > 0, one pass fewer.
   */
  private biasAct(x: string, prefix: string, channels: number, act: boolean, gain: number): string {
    const { g } = this;
    const b = weight(this.weights, `${prefix}bias`);
    let y = g.op(
      'Add',
      [x, g.floats(`${prefix}bias`, [1, channels, 1, 1], scaled(b.data, gain))],
      `${prefix}biased`,
    );
    if (act) y = g.op('LeakyRelu', [y], `${prefix}lrelu`, { alpha: LRELU_ALPHA });
    const clamp = this.cfg.convClamp;
    if (clamp != null && clamp >= 0) {
      y = g.op(
        'Clip',
        [y, g.scalar(`${prefix}clamp_min`, -clamp), g.scalar(`${prefix}clamp_max`, clamp)],
        `${prefix}clamped`,
      );
    }
    return y;
  }

  layer(x: string, wIndex: number, spec: LayerSpec): string {
    const { g, weights } = this;
    const { prefix, inChannels: ci, outChannels: co, resolution: r } = spec;
    const styles = fullyConnected(g, weights, `${prefix}affine.`, this.w(wIndex), 1);
    let y = g.op('Mul', [x, this.perChannel(styles, `${prefix}styles_nchw`)], `${prefix}modulated`);
    const kernel = weight(weights, `${prefix}weight`);
    const [kh, kw] = kernel.shape;
    if (spec.up === 1) {
      const wName = g.floats(`${prefix}weight`, [co, ci, kh, kw], permuteKernel(kernel, 'OIHW'));
      y = g.op('Conv', [y, wName], `${prefix}conv`, { pads: [1, 1, 1, 1], kernel_shape: [kh, kw] });
    } else {
      const wName = g.floats(`${prefix}weight`, [ci, co, kh, kw], permuteKernel(kernel, 'IOHW'));
      y = g.op('ConvTranspose', [y, wName], `${prefix}conv_transpose`, {
        strides: [2, 2],
        kernel_shape: [kh, kw],
      });
      const f = weight(weights, `${prefix}resample_filter`);
      const fir = g.floats(`${prefix}fir`, [co, 1, ...f.shape], depthwiseFilter(f, co, 4, true));
      y = g.op('Conv', [y, fir], `${prefix}fir`, { pads: [1, 1, 1, 1], group: co, kernel_shape: f.shape });
    }
    // Demodulation: 1 / sqrt(styles^2 @ sum_{kh,kw} w^2 + eps), per sample and output channel.
    const wSquareSum = new Float32Array(ci * co);
    for (let i = 0; i < kernel.data.length; i++) wSquareSum[i % (ci * co)] += kernel.data[i] * kernel.data[i];
    const sq = g.op('Mul', [styles, styles], `${prefix}styles_sq`);
    const energy = g.op(
      'MatMul',
      [sq, g.floats(`${prefix}weight_sq_sum`, [ci, co], wSquareSum)],
      `${prefix}energy`,
    );
    // The activation gain rides on the coefficients: gain / sqrt(energy + eps).
    const dcoefs = g.op(
      'Div',
      [
        g.scalar(`${prefix}act_gain`, LRELU_GAIN),
        g.op(
          'Sqrt',
          [g.op('Add', [energy, g.scalar(`${prefix}demod_eps`, DEMOD_EPS)], `${prefix}energy_eps`)],
          `${prefix}rms`,
        ),
      ],
      `${prefix}dcoefs`,
    );
    y = g.op('Mul', [y, this.perChannel(dcoefs, `${prefix}dcoefs_nchw`)], `${prefix}demodulated`);
    const strength = weight(weights, `${prefix}noise_strength`).data[0];
    if (this.noise === 'const') {
      const nc = weight(weights, `${prefix}noise_const`);
      y = g.op(
        'Add',
        [y, g.floats(`${prefix}noise`, [1, 1, r, r], scaled(nc.data, strength * LRELU_GAIN))],
        `${prefix}noised`,
      );
    } else if (this.noise === 'random') {
      const input = g.input(noiseInputName(prefix), [BATCH, 1, r, r]);
      const scaledNoise = g.op(
        'Mul',
        [input, g.scalar(`${prefix}noise_strength`, strength * LRELU_GAIN)],
        `${prefix}noise`,
      );
      y = g.op('Add', [y, scaledNoise], `${prefix}noised`);
    }
    return this.biasAct(y, prefix, co, true, LRELU_GAIN);
  }

  toRgb(x: string, wIndex: number, prefix: string, channels: number): string {
    const { g, weights } = this;
    const styles = fullyConnected(g, weights, `${prefix}affine.`, this.w(wIndex), 1, 1 / Math.sqrt(channels));
    const y = g.op('Mul', [x, this.perChannel(styles, `${prefix}styles_nchw`)], `${prefix}modulated`);
    const kernel = weight(weights, `${prefix}weight`);
    const co = this.cfg.imgChannels;
    const wName = g.floats(`${prefix}weight`, [co, channels, 1, 1], permuteKernel(kernel, 'OIHW'));
    const rgb = g.op('Conv', [y, wName], `${prefix}conv`, { kernel_shape: [1, 1] });
    return this.biasAct(rgb, prefix, co, false, 1);
  }

  /** upfirdn2d(img, f, up=2, pad [2,1,2,1], gain 4) as a depthwise transposed conv cropping 1 a side. */
  upsampleImage(img: string, blockPrefix: string): string {
    const f = weight(this.weights, `${blockPrefix}resample_filter`);
    const c = this.cfg.imgChannels;
    const kernel = this.g.floats(
      `${blockPrefix}upsample_fir`,
      [c, 1, ...f.shape],
      depthwiseFilter(f, c, 4, false),
    );
    return this.g.op('ConvTranspose', [img, kernel], `${blockPrefix}img_up`, {
      strides: [2, 2],
      pads: [1, 1, 1, 1],
      group: c,
      kernel_shape: f.shape,
    });
  }

  build(): string {
    const { cfg, weights, g } = this;
    let x = '';
    let img = '';
    let wIndex = 0;
    for (const res of synthesisResolutions(cfg.resolution)) {
      const block = `synthesis.b${res}.`;
      const channels = channelsAt(cfg, res);
      if (res === 4) {
        const c = weight(weights, `${block}const`); // [h, w, C] -> [1, C, h, w]
        const nchw = new Float32Array(c.data.length);
        const [h, w] = c.shape;
        for (let y = 0; y < h; y++)
          for (let xx = 0; xx < w; xx++)
            for (let ch = 0; ch < channels; ch++)
              nchw[(ch * h + y) * w + xx] = c.data[(y * w + xx) * channels + ch];
        // [1,C,4,4] times styles [N,C,1,1] broadcasts to the batch: no Tile needed.
        x = g.floats(`${block}const`, [1, channels, h, w], nchw);
        x = this.layer(x, wIndex++, {
          prefix: `${block}conv1.`,
          inChannels: channels,
          outChannels: channels,
          resolution: res,
          up: 1,
        });
      } else {
        const inChannels = channelsAt(cfg, res / 2);
        x = this.layer(x, wIndex++, {
          prefix: `${block}conv0.`,
          inChannels,
          outChannels: channels,
          resolution: res,
          up: 2,
        });
        x = this.layer(x, wIndex++, {
          prefix: `${block}conv1.`,
          inChannels: channels,
          outChannels: channels,
          resolution: res,
          up: 1,
        });
      }
      const rgb = this.toRgb(x, wIndex, `${block}torgb.`, channels);
      img = img ? g.op('Add', [this.upsampleImage(img, block), rgb], `${block}img`) : rgb;
    }
    return g.op('Identity', [img], 'img', undefined, 'img');
  }
}

/** The graph of the generator (or one of its parts) as a serialised ModelProto. */
export function buildGeneratorModel(
  cfg: GeneratorConfig,
  weights: GeneratorWeights,
  opts: GeneratorGraphOptions = {},
): Uint8Array {
  const part = opts.part ?? 'generator';
  const noise = opts.noise ?? 'const';
  assertSupportedGenerator(cfg, weights);
  const g = new GraphBuilder();
  const numW = numWs(cfg.resolution);
  if (part === 'mapping' || part === 'generator') {
    const z = g.input('z', [BATCH, cfg.zDim]);
    const psi = g.input('psi', [1]);
    const ws = buildMapping(g, cfg, weights, z, psi);
    if (part === 'mapping') g.output(ws, [BATCH, numW, cfg.wDim]);
    else {
      const img = new SynthesisGraph(g, cfg, weights, ws, noise).build();
      g.output(img, [BATCH, cfg.imgChannels, cfg.resolution, cfg.resolution]);
    }
  } else {
    const ws = g.input('ws', [BATCH, numW, cfg.wDim]);
    const img = new SynthesisGraph(g, cfg, weights, ws, noise).build();
    g.output(img, [BATCH, cfg.imgChannels, cfg.resolution, cfg.resolution]);
  }
  return encodeModel({
    graph: {
      name: `stylegan2_${part}`,
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: g.inputs,
      outputs: g.outputs,
    },
    producerName: 'facestyle',
    producerVersion: '0.1.0',
    docString: opts.description,
  });
}
