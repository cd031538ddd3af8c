// bias_act: bias, activation, gain and clamp in the order of NVlabs' op of the same name.
import { tf } from '../tf.ts';
import { fusedBiasAct } from './fused_bias_act.ts';

export type Activation = 'linear' | 'lrelu';

/** Default gain of each activation (sqrt(2) for leaky ReLU keeps the signal variance). */
export const ACTIVATION_GAIN: Record<Activation, number> = { linear: 1, lrelu: Math.SQRT2 };

const LRELU_ALPHA = 0.2;

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
  /** Added after `scale`, before the bias, broadcast (a synthesis layer's noise). */
  noise?: tf.Tensor | null;
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
    return fusedBiasAct({ x, d: opts.scale, noise: opts.noise, b }, { alpha, gain, clamp }) as T;
  }
  let y: tf.Tensor = opts.scale ? tf.mul(x, opts.scale) : x;
  if (opts.noise) y = tf.add(y, opts.noise);
  if (b) y = tf.add(y, b);
  if (act === 'lrelu') y = leakyRelu(y);
  if (gain !== 1) y = tf.mul(y, gain);
  if (clamp >= 0) y = tf.clipByValue(y, -clamp, clamp);
  return y as T;
}
