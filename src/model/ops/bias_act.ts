// bias_act: bias, activation, gain and clamp in the order of NVlabs' op of the same name.
import { tf } from '../tf.ts';
import { DEMOD_EPS, fusedBiasAct } from './fused_bias_act.ts';

export type Activation = 'linear' | 'lrelu';

/** Default gain of each activation (sqrt(2) for leaky ReLU keeps the signal variance). */
export const ACTIVATION_GAIN: Record<Activation, number> = { linear: 1, lrelu: Math.SQRT2 };

export const LRELU_ALPHA = 0.2;

export function leakyRelu(x: tf.Tensor): tf.Tensor {
  return tf.leakyRelu(x, LRELU_ALPHA);
}

export interface BiasActOptions {
  act?: Activation;
  /** Multiplies after the activation; defaults to the activation's own gain. */
  gain?: number;
  clamp?: number | null;
  /** Multiplies x before anything else, broadcast (a modulated conv's demodulation coefficients). */
  scale?: tf.Tensor | null;
  /** Instead of `scale`: the demodulation's sum of squares v; x is multiplied by 1 / sqrt(v + 1e-8). */
  demodSquareSum?: tf.Tensor | null;
  /** Added after `scale`, before the bias, broadcast (a synthesis layer's noise). */
  noise?: tf.Tensor | null;
  /** Multiplies `noise` first (the noise strength, one value). */
  noiseStrength?: tf.Tensor | null;
}

/**
 * x * scale + noise + b (each optional, broadcast; b over the last axis), activation, gain, clamp to
 * [-clamp, clamp]. On webgpu one fused dispatch (differentiable to any order); elsewhere tfjs ops.
 */
export function biasAct<T extends tf.Tensor>(x: T, b: tf.Tensor | null, opts: BiasActOptions = {}): T {
  const act = opts.act ?? 'linear';
  const gain = opts.gain ?? ACTIVATION_GAIN[act];
  const clamp = opts.clamp != null && opts.clamp >= 0 ? opts.clamp : -1;
  if (tf.getBackend() === 'webgpu') {
    const alpha = act === 'lrelu' ? LRELU_ALPHA : 1;
    const ns = opts.noise && opts.noiseStrength ? tf.reshape(opts.noiseStrength, [1]) : null;
    const inputs = { x, d: opts.scale, v: opts.demodSquareSum, noise: opts.noise, ns, b };
    return fusedBiasAct(inputs, { alpha, gain, clamp }) as T;
  }
  let y: tf.Tensor = opts.scale ? tf.mul(x, opts.scale) : x;
  if (opts.demodSquareSum) y = tf.mul(y, tf.rsqrt(tf.add(opts.demodSquareSum, DEMOD_EPS)));
  if (opts.noise) y = tf.add(y, opts.noiseStrength ? tf.mul(opts.noise, opts.noiseStrength) : opts.noise);
  if (b) y = tf.add(y, b);
  if (act === 'lrelu') y = leakyRelu(y);
  if (gain !== 1) y = tf.mul(y, gain);
  if (clamp >= 0) y = tf.clipByValue(y, -clamp, clamp);
  return y as T;
}
