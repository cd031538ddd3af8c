// Fresh parameters for a network from its ParamSpecs, initialised as the official code does
// (randn weights, zero biases, affine biases 1, FC weights randn / lr_multiplier).
import type { ParamSpec } from './networks/specs.ts';
import type { ParamStore } from './params.ts';
import { tf } from './tf.ts';

export function initParams(specs: ParamSpec[], seed = 0): ParamStore {
  const params: ParamStore = new Map();
  specs.forEach((spec, i) => {
    params.set(
      spec.name,
      tf.tidy(() => initTensor(spec, seed * 100_003 + i)),
    );
  });
  return params;
}

function initTensor(spec: ParamSpec, seed: number): tf.Tensor {
  const { shape, init } = spec;
  if (init === 'zeros') return tf.zeros(shape);
  if (init === 'ones') return tf.ones(shape);
  if (init === 'randn') return tf.randomNormal(shape, 0, 1, 'float32', seed);
  if ('constant' in init) return tf.fill(shape, init.constant);
  if ('filter' in init) {
    const f = tf.tensor1d(init.filter);
    const outer = tf.outerProduct(f, f);
    return tf.div(outer, tf.sum(outer));
  }
  return tf.randomNormal(shape, 0, init.randnScale, 'float32', seed);
}
