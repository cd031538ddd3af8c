import type { GeneratorConfig } from '../config.ts';
import type { ParamStore } from '../params.ts';
import { tf } from '../tf.ts';
import { assertShape, broadcastCopies, FullyConnectedLayer, Module } from './layers.ts';
import { mappingFeatures } from './specs.ts';

export function normalize2ndMoment(x: tf.Tensor2D, eps = 1e-8): tf.Tensor2D {
  return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps))) as tf.Tensor2D;
}

export interface MappingOptions {
  /** Truncation: w = w_avg + psi (w - w_avg). */
  psi?: number;
  /** Truncate only the first `cutoff` of the num_ws layers (null: all). */
  cutoff?: number | null;
}

/** z -> w: normalise, `mappingLayers` FC layers (lr multiplier 0.01), broadcast to num_ws, truncate. */
export class MappingNetwork extends Module {
  readonly layers: FullyConnectedLayer[];

  constructor(
    readonly cfg: GeneratorConfig,
    readonly numWs: number,
  ) {
    super('mapping.');
    this.layers = mappingFeatures(cfg).map(
      (f, i) =>
        new FullyConnectedLayer(`mapping.fc${i}.`, f.in, f.out, {
          activation: 'lrelu',
          lrMultiplier: cfg.mappingLrMultiplier,
        }),
    );
  }

  /** Unbroadcast w: [N, w_dim]. */
  embed(params: ParamStore, z: tf.Tensor2D): tf.Tensor2D {
    assertShape(z, [null, this.cfg.zDim], 'mapping input z');
    let x = normalize2ndMoment(z);
    for (const layer of this.layers) x = layer.forward(params, x);
    return x;
  }

  /** ws: [N, num_ws, w_dim]. */
  forward(params: ParamStore, z: tf.Tensor2D, opts: MappingOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.truncate(params, this.broadcast(this.embed(params, z)), opts));
  }

  broadcast(w: tf.Tensor2D): tf.Tensor3D {
    return broadcastCopies(tf.expandDims(w, 1) as tf.Tensor3D, [w.shape[0], this.numWs, w.shape[1]]);
  }

  truncate(params: ParamStore, ws: tf.Tensor3D, { psi = 1, cutoff = null }: MappingOptions): tf.Tensor3D {
    if (psi === 1) return ws;
    const wAvg = this.p(params, 'w_avg');
    const truncated = tf.add(wAvg, tf.mul(tf.sub(ws, wAvg), psi)) as tf.Tensor3D;
    if (cutoff == null || cutoff >= this.numWs) return truncated;
    const [n, , d] = ws.shape;
    return tf.concat(
      [
        tf.slice(truncated, [0, 0, 0], [n, cutoff, d]),
        tf.slice(ws, [0, cutoff, 0], [n, this.numWs - cutoff, d]),
      ],
      1,
    );
  }
}
