// The building blocks shared by the generator and the discriminator, one class per concept as in
// NVlabs' networks_stylegan2.py. Each layer computes its forward pass from a ParamStore whose
// tensors specs.ts declares (names, shapes in our layouts, initialisation).

import { ACTIVATION_GAIN, type Activation, biasAct, LRELU_ALPHA } from '../ops/bias_act.ts';
import { type ConvOps, conv2dResample, derivedFromWeight } from '../ops/conv.ts';
import { dense } from '../ops/webgpu/dense.ts';
import { getParam, type ParamStore } from '../params.ts';
import { tf } from '../tf.ts';

export interface NetworkOptions {
  /**
   * The convolutions this network's calls run (training passes trainingConvOps(): gradients on
   * every backend, to any order); default: tfjs's native ones. Chosen per instance, never per process.
   */
  convOps?: ConvOps;
}

/**
 * A parameter times its equalised-learning-rate gain, computed once per parameter value outside
 * gradient tapes (inference runs no per-call weight pass), afresh under them.
 */
export function scaled(param: tf.Tensor, gain: number): tf.Tensor {
  if (gain === 1) return param;
  return derivedFromWeight(param, `scaled|${gain}`, () => [tf.mul(param, gain)])[0];
}

export abstract class Module {
  constructor(readonly prefix: string) {}
  protected p(params: ParamStore, name: string): tf.Tensor {
    return getParam(params, `${this.prefix}${name}`);
  }
}

export interface FullyConnectedOptions {
  activation?: Activation;
  /** Learning-rate multiplier: weights are stored divided by it and scaled back at run time. */
  lrMultiplier?: number;
}

/** Equalised-learning-rate fully connected layer: weight [in, out] scaled by lr_mul / sqrt(in) at run time. */
export class FullyConnectedLayer extends Module {
  readonly weightGain: number;
  readonly activation: Activation;
  readonly lrMultiplier: number;
  constructor(
    prefix: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    { activation = 'linear', lrMultiplier = 1 }: FullyConnectedOptions = {},
  ) {
    super(prefix);
    this.activation = activation;
    this.lrMultiplier = lrMultiplier;
    this.weightGain = lrMultiplier / Math.sqrt(inFeatures);
  }

  /** `outputGain` (linear layers only) scales the output, folded into the cached scaled weights. */
  forward(params: ParamStore, x: tf.Tensor2D, outputGain = 1): tf.Tensor2D {
    tf.util.assert(
      x.shape[1] === this.inFeatures,
      () => `${this.prefix}: expected [N,${this.inFeatures}], got [${x.shape}]`,
    );
    tf.util.assert(outputGain === 1 || this.activation === 'linear', () => 'outputGain needs a linear layer');
    if (tf.getBackend() === 'webgpu') {
      // One dispatch: the stored weights and bias times their gains inside the product's pass.
      const attrs = {
        transposeA: false,
        transposeB: false,
        square: 'none' as const,
        alpha: this.weightGain * outputGain,
        beta: this.lrMultiplier * outputGain,
        slope: this.activation === 'lrelu' ? LRELU_ALPHA : 1,
        gain: ACTIVATION_GAIN[this.activation],
      };
      return dense(x, this.p(params, 'weight') as tf.Tensor2D, attrs, this.p(params, 'bias'));
    }
    const w = scaled(this.p(params, 'weight'), this.weightGain * outputGain) as tf.Tensor2D;
    const b = scaled(this.p(params, 'bias'), this.lrMultiplier * outputGain);
    return biasAct(tf.matMul(x, w), b, { act: this.activation });
  }
}

/** Equalised-learning-rate convolution with optional FIR up/downsampling (the discriminator's layers). */
export class Conv2dLayer extends Module {
  readonly weightGain: number;
  constructor(
    prefix: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly opts: {
      activation?: Activation;
      bias?: boolean;
      up?: 1 | 2;
      down?: 1 | 2;
      convClamp?: number | null;
    } = {},
  ) {
    super(prefix);
    this.weightGain = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
  }

  forward(params: ParamStore, x: tf.Tensor4D, gain = 1): tf.Tensor4D {
    tf.util.assert(
      x.shape[3] === this.inChannels,
      () => `${this.prefix}: expected ${this.inChannels} channels, got [${x.shape}]`,
    );
    const { activation = 'linear', up = 1, down = 1, convClamp = null } = this.opts;
    const w = scaled(this.p(params, 'weight'), this.weightGain) as tf.Tensor4D;
    const y = conv2dResample(x, w, {
      up,
      down,
      padding: Math.floor(this.kernelSize / 2),
      flipWeight: up === 1,
    });
    const b = this.opts.bias === false ? null : this.p(params, 'bias');
    return biasAct(y, b, {
      act: activation,
      gain: ACTIVATION_GAIN[activation] * gain,
      clamp: convClamp == null ? null : convClamp * gain,
    });
  }
}

/**
 * x repeated along its size-1 axes up to `shape` (as tf.tile), written as a broadcast add of zeros:
 * its gradient is one sum, where tile's is a slice and an add per copy (on webgpu a GPU program each).
 */
export function broadcastCopies<T extends tf.Tensor>(x: T, shape: number[]): T {
  const reps = shape.map((size, axis) => (x.shape[axis] === size ? 1 : size));
  tf.util.assert(
    shape.length === x.rank && shape.every((size, axis) => x.shape[axis] === size || x.shape[axis] === 1),
    () => `broadcastCopies: [${x.shape}] does not broadcast to [${shape}]`,
  );
  return tf.add(x, tf.zeros(reps)) as T;
}

/** Shape assertion helper in the spirit of misc.assert_shape: null entries match any size. */
export function assertShape(t: tf.Tensor, expected: Array<number | null>, what: string): void {
  const ok = t.shape.length === expected.length && expected.every((e, i) => e === null || e === t.shape[i]);
  if (!ok) throw new Error(`${what}: expected shape [${expected.map((e) => e ?? '?')}], got [${t.shape}]`);
}
