import type { tf } from './tf.ts';

/**
 * The tensors of one network (mapping+synthesis, or discriminator), keyed by their official NVlabs
 * state_dict names without the network prefix (`synthesis.b4.conv1.weight`, `b32.fromrgb.bias`),
 * in TensorFlow.js layouts (see layout.ts). Training stores tf.Variable values here.
 */
export type ParamStore = Map<string, tf.Tensor>;

export function getParam(params: ParamStore, name: string): tf.Tensor {
  const t = params.get(name);
  if (!t) throw new Error(`missing parameter ${name}`);
  return t;
}

export function disposeParams(params: ParamStore): void {
  for (const t of params.values()) t.dispose();
}
