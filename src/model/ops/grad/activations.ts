// Activations whose gradients are themselves differentiable. tfjs builds the gradients of
// leakyRelu (Greater + Select) and clipByValue (GreaterEqual, LessEqual, LogicalAnd + Select) from
// comparison ops that have no gradient, so the second backward pass of R1 or path length fails
// on them. Abs and Relu differentiate through Step, whose gradient is (correctly) zero.
//
// A second trap: gradients that read the op's saved *output* (Tanh, Sigmoid, Exp) lose its
// dependence on the input one order too early. tfjs clones the output for the tape before the op's
// own tape node exists, so the clone looks unconnected to the inputs and every higher-order
// gradient through it silently comes out wrong (no error). Recomputing from the saved input fixes it.
import { tf } from '../../tf.ts';

/** Leaky ReLU as a combination of x and |x|: identical values, differentiable twice. */
export function leakyReluDifferentiable<T extends tf.Tensor>(x: T, alpha = 0.2): T {
  return tf.add(tf.mul(x, (1 + alpha) / 2), tf.mul(tf.abs(x), (1 - alpha) / 2)) as T;
}

/**
 * clipByValue(x, -limit, limit) as x - relu(x - limit) + relu(-x - limit): exact inside the range
 * (both ReLUs are 0 there, unlike (|x + c| - |x - c|) / 2, which rounds at the scale of c), and
 * differentiable twice.
 */
export function clampDifferentiable<T extends tf.Tensor>(x: T, limit: number): T {
  if (!(limit >= 0)) throw new RangeError(`clamp limit must be >= 0, got ${limit}`);
  return tf.add(tf.sub(x, tf.relu(tf.sub(x, limit))), tf.relu(tf.sub(tf.neg(x), limit))) as T;
}

/**
 * Replaces tfjs's gradients of LeakyRelu and ClipByValue (process-wide, same values) with forms
 * built from Step, which has a gradient, and those of Tanh, Sigmoid and Exp with forms that read
 * their input: the native forward kernels stay, and every network that uses them differentiates
 * to any order. Idempotent.
 */
export function installSecondOrderGradients(): void {
  tf.registerGradient({
    kernelName: 'LeakyRelu',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const alpha = (attrs as { alpha: number }).alpha;
      // slope 1 where x > 0, alpha elsewhere (tfjs's convention at 0)
      return { x: () => tf.mul(dy as tf.Tensor, tf.add(tf.mul(tf.step(x), 1 - alpha), alpha)) };
    },
  });
  tf.registerGradient({
    kernelName: 'ClipByValue',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const { clipValueMin, clipValueMax } = attrs as { clipValueMin: number; clipValueMax: number };
      return {
        x: () => {
          // 1 inside [min, max] (bounds included, as tfjs), 0 outside
          const above = tf.step(tf.sub(x, clipValueMax));
          const below = tf.step(tf.sub(clipValueMin, x));
          return tf.mul(dy as tf.Tensor, tf.sub(tf.sub(1, above), below));
        },
      };
    },
  });
  tf.registerGradient({
    kernelName: 'Tanh',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return { x: () => tf.mul(dy as tf.Tensor, tf.sub(1, tf.square(tf.tanh(x)))) };
    },
  });
  tf.registerGradient({
    kernelName: 'Sigmoid',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return {
        x: () => {
          const y = tf.sigmoid(x);
          return tf.mul(dy as tf.Tensor, tf.mul(y, tf.sub(1, y)));
        },
      };
    },
  });
  tf.registerGradient({
    kernelName: 'Exp',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return { x: () => tf.mul(dy as tf.Tensor, tf.exp(x)) };
    },
  });
}
