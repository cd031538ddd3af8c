// bias_act: bias, activation, gain and clamp in the order of NVlabs' op of the same name.
import { tf } from '../tf.ts';

export type Activation = 'linear' | 'lrelu';

/** Default gain of each activation (sqrt(2) for leaky ReLU keeps the signal variance). */
export const ACTIVATION_GAIN: Record<Activation, number> = { linear: 1, lrelu: Math.SQRT2 };

export function leakyRelu(x: tf.Tensor): tf.Tensor {
  return tf.leakyRelu(x, 0.2);
}

export interface BiasActOptions {
  act?: Activation;
  /** Multiplies after the activation; defaults to the activation's own gain. */
  gain?: number;
  clamp?: number | null;
}

/** x + b (b broadcast over the last axis), activation, gain, clamp to [-clamp, clamp]. */
export function biasAct<T extends tf.Tensor>(x: T, b: tf.Tensor | null, opts: BiasActOptions = {}): T {
  const act = opts.act ?? 'linear';
  const gain = opts.gain ?? ACTIVATION_GAIN[act];
  let y: tf.Tensor = b ? tf.add(x, b) : x;
  if (act === 'lrelu') y = leakyRelu(y);
  if (gain !== 1) y = tf.mul(y, gain);
  if (opts.clamp != null && opts.clamp >= 0) y = tf.clipByValue(y, -opts.clamp, opts.clamp);
  return y as T;
}
