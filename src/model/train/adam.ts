// Adam over a ParamStore of tf.Variables, with PyTorch's update rule (the official training runs
// torch.optim.Adam): per-parameter step counts, bias corrections 1 - beta^t, eps added to
// sqrt(v) / sqrt(1 - beta2^t). tf.train.adam computes the same update but keys its moments by the
// position of a variable in each call's gradient list, which breaks when a step updates a
// different subset (frozen D blocks, a parameter without a gradient) and cannot be saved by name.
import { tf } from '../tf.ts';
import type { AdamHyperparameters } from './loss.ts';

/** The official defaults for StyleGAN2: betas (0, 0.99), eps 1e-8 (lr is per configuration). */
export const STYLEGAN2_ADAM: Omit<AdamHyperparameters, 'lr'> = { beta1: 0, beta2: 0.99, eps: 1e-8 };

interface Moments {
  step: number;
  /** Exponential average of the gradient (PyTorch exp_avg). */
  m: tf.Tensor;
  /** Exponential average of the squared gradient (PyTorch exp_avg_sq). */
  v: tf.Tensor;
}

export interface AdamSnapshot {
  steps: Record<string, number>;
  /** `${param}.exp_avg` and `${param}.exp_avg_sq`, as PyTorch's optimizer state names them. */
  tensors: Map<string, tf.Tensor>;
}

/** The official guard against a bad batch: NaN -> 0, +-inf -> +-1e5. */
export function sanitizeGradient(g: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.where(tf.isNaN(g), tf.zerosLike(g), tf.clipByValue(g, -1e5, 1e5)));
}

export class Adam {
  private readonly moments = new Map<string, Moments>();

  constructor(readonly hp: AdamHyperparameters) {
    const { lr, beta1, beta2, eps } = hp;
    if (!(lr > 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0)) {
      throw new RangeError(`Adam: need lr > 0, 0 <= betas < 1, eps > 0; got ${JSON.stringify(hp)}`);
    }
  }

  /**
   * One update of every parameter that has a gradient (others keep their value and step count).
   * Gradients are sanitised first, as the official loop does.
   */
  apply(
    params: ReadonlyMap<string, tf.Variable>,
    grads: Record<string, tf.Tensor> | ReadonlyMap<string, tf.Tensor>,
  ): void {
    const entries = grads instanceof Map ? [...grads] : Object.entries(grads);
    const { lr, beta1, beta2, eps } = this.hp;
    for (const [name, grad] of entries) {
      const param = params.get(name);
      if (!param) throw new Error(`Adam: gradient for unknown parameter ${name}`);
      if (!tf.util.arraysEqual(param.shape, grad.shape)) {
        throw new Error(`Adam: gradient of ${name} has shape [${grad.shape}], parameter [${param.shape}]`);
      }
      const previous = this.moments.get(name);
      const step = (previous?.step ?? 0) + 1;
      const [m, v] = tf.tidy(() => {
        const g = sanitizeGradient(grad);
        const m0 = previous?.m ?? tf.zerosLike(param);
        const v0 = previous?.v ?? tf.zerosLike(param);
        const m1 = tf.add(tf.mul(m0, beta1), tf.mul(g, 1 - beta1));
        const v1 = tf.add(tf.mul(v0, beta2), tf.mul(tf.square(g), 1 - beta2));
        const stepSize = lr / (1 - beta1 ** step);
        const denom = tf.add(tf.div(tf.sqrt(v1), Math.sqrt(1 - beta2 ** step)), eps);
        param.assign(tf.sub(param, tf.mul(tf.div(m1, denom), stepSize)));
        return [m1, v1];
      });
      previous?.m.dispose();
      previous?.v.dispose();
      this.moments.set(name, { step, m, v });
    }
  }

  /** The steps taken for `name` (0 before its first update). */
  steps(name: string): number {
    return this.moments.get(name)?.step ?? 0;
  }

  /** Copies of the optimiser state for a snapshot; the caller disposes the tensors. */
  snapshot(): AdamSnapshot {
    const steps: Record<string, number> = {};
    const tensors = new Map<string, tf.Tensor>();
    for (const [name, { step, m, v }] of this.moments) {
      steps[name] = step;
      tensors.set(`${name}.exp_avg`, tf.clone(m));
      tensors.set(`${name}.exp_avg_sq`, tf.clone(v));
    }
    return { steps, tensors };
  }

  /** Replaces the state with a snapshot's (tensors are copied, the snapshot stays the caller's). */
  restore(snapshot: AdamSnapshot): void {
    this.dispose();
    for (const [name, step] of Object.entries(snapshot.steps)) {
      const m = snapshot.tensors.get(`${name}.exp_avg`);
      const v = snapshot.tensors.get(`${name}.exp_avg_sq`);
      if (!m || !v || !(Number.isInteger(step) && step > 0)) {
        throw new Error(`Adam: incomplete optimiser state for ${name}`);
      }
      this.moments.set(name, { step, m: tf.clone(m), v: tf.clone(v) });
    }
  }

  dispose(): void {
    for (const { m, v } of this.moments.values()) tf.dispose([m, v]);
    this.moments.clear();
  }
}
