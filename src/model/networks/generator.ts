import { type GeneratorConfig, numWs } from '../config.ts';
import { withConvOps } from '../ops/conv.ts';
import type { ParamStore } from '../params.ts';
import { tf } from '../tf.ts';
import type { NetworkOptions } from './layers.ts';
import { MappingNetwork, type MappingOptions } from './mapping.ts';
import { generatorSpecs, type ParamSpec } from './specs.ts';
import { SynthesisNetwork, type SynthesisOptions } from './synthesis.ts';

export interface GenerateOptions extends MappingOptions, SynthesisOptions {}

/** The StyleGAN2 generator: mapping network + `skip` synthesis network over one ParamStore. */
export class Generator {
  readonly mapping: MappingNetwork;
  readonly synthesis: SynthesisNetwork;
  readonly numWs: number;

  constructor(
    readonly cfg: GeneratorConfig,
    readonly params: ParamStore,
    readonly opts: NetworkOptions = {},
  ) {
    this.numWs = numWs(cfg.resolution);
    this.mapping = new MappingNetwork(cfg, this.numWs);
    this.synthesis = new SynthesisNetwork(cfg);
  }

  /** The parameters this network reads (see specs.ts). */
  static specs(cfg: GeneratorConfig): ParamSpec[] {
    return generatorSpecs(cfg);
  }

  /** z [N, z_dim] -> ws [N, num_ws, w_dim]. */
  map(z: tf.Tensor2D, opts: MappingOptions = {}): tf.Tensor3D {
    return this.mapping.forward(this.params, z, opts);
  }

  /** ws [N, num_ws, w_dim] -> NHWC images, raw (roughly [-1, 1], not clamped). */
  synthesize(ws: tf.Tensor3D, opts: SynthesisOptions = {}): tf.Tensor4D {
    return withConvOps(this.opts.convOps, () => this.synthesis.forward(this.params, ws, opts));
  }

  generate(z: tf.Tensor2D, opts: GenerateOptions = {}): tf.Tensor4D {
    return tf.tidy(() => this.synthesize(this.map(z, opts), opts));
  }
}

/**
 * Style mixing: layers from `cutoff` on take their w from `other` (the official training regulariser
 * and the "mix" visualisation).
 */
export function mixStyles(ws: tf.Tensor3D, other: tf.Tensor3D, cutoff: number): tf.Tensor3D {
  const [n, numW, d] = ws.shape;
  if (cutoff <= 0) return other;
  if (cutoff >= numW) return ws;
  return tf.concat(
    [tf.slice(ws, [0, 0, 0], [n, cutoff, d]), tf.slice(other, [0, cutoff, 0], [n, numW - cutoff, d])],
    1,
  );
}
