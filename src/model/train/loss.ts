// StyleGAN2 training objectives (stylegan2-ada-pytorch's StyleGAN2Loss) and the hyperparameter
// arithmetic around them. Everything here is a function of its arguments; the training loop owns
// the state (the path-length mean, the optimisers).
import { tf } from '../tf.ts';

/** G's non-saturating logistic loss per sample: softplus(-D(G(z))). */
export function generatorLoss(fakeLogits: tf.Tensor): tf.Tensor1D {
  return tf.reshape(tf.softplus(tf.neg(fakeLogits)), [-1]);
}

/** D's logistic loss per sample on generated images: softplus(D(G(z))). */
export function discriminatorFakeLoss(fakeLogits: tf.Tensor): tf.Tensor1D {
  return tf.reshape(tf.softplus(fakeLogits), [-1]);
}

/** D's logistic loss per sample on real images: softplus(-D(x)). */
export function discriminatorRealLoss(realLogits: tf.Tensor): tf.Tensor1D {
  return tf.reshape(tf.softplus(tf.neg(realLogits)), [-1]);
}

/**
 * R1 per image: |d sum(D(x)) / d x|^2 summed over pixels and channels, before the gamma/2 factor.
 * Differentiable in D's weights when D's ops are (run it inside tf.variableGrads). `discriminate`
 * maps images to logits [N, 1]; augmentation belongs inside it, as in the official loss.
 */
export function r1Penalty(discriminate: (images: tf.Tensor4D) => tf.Tensor, reals: tf.Tensor4D): tf.Tensor1D {
  const grads = tf.grad((x: tf.Tensor) => tf.sum(discriminate(x as tf.Tensor4D)))(reals);
  return tf.sum(tf.square(grads), [1, 2, 3]) as tf.Tensor1D;
}

export interface PathLengthResult {
  /** (|J^T y| - a)^2 per sample, differentiable in the generator's parameters. */
  penalty: tf.Tensor1D;
  /** |J^T y| per sample, for logging. */
  lengths: tf.Tensor1D;
  /**
   * The updated running mean a, for the training loop to store. Kept (tf.keep) so that it
   * outlives the gradient scope the penalty is computed in; the caller reads and disposes it.
   * (A number would need a synchronous read, which webgpu does not allow.)
   */
  mean: tf.Scalar;
}

/**
 * Path-length regularisation: for images y = g(w) and random images n / sqrt(H W), the length of
 * d sum(g(w) * n) / d w (summed over w_dim, averaged over num_ws); the running mean moves by
 * `decay` towards this batch's mean, and the penalty uses the moved mean, gradient included, as the
 * official lerp does. The caller passes the shrunk batch (official pl_batch_shrink 2).
 */
export function pathLengthPenalty(
  synthesize: (ws: tf.Tensor3D) => tf.Tensor4D,
  ws: tf.Tensor3D,
  runningMean: number,
  opts: { decay?: number; seed?: number } = {},
): PathLengthResult {
  const decay = opts.decay ?? 0.01;
  const grads = tf.grad((w: tf.Tensor) => {
    const images = synthesize(w as tf.Tensor3D);
    const [, h, wd] = images.shape;
    const noise = tf.div(tf.randomNormal(images.shape, 0, 1, 'float32', opts.seed), Math.sqrt(h * wd));
    return tf.sum(tf.mul(images, noise));
  })(ws);
  const lengths = tf.sqrt(tf.mean(tf.sum(tf.square(grads), 2), 1)) as tf.Tensor1D;
  const movedMean = tf.add(runningMean, tf.mul(tf.sub(tf.mean(lengths), runningMean), decay)) as tf.Scalar;
  const penalty = tf.square(tf.sub(lengths, movedMean)) as tf.Tensor1D;
  return { penalty, lengths, mean: tf.keep(movedMean) };
}

export interface AdamHyperparameters {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

/**
 * Lazy regularisation runs a regulariser every `interval` minibatches with its loss multiplied by
 * the interval; the official code compensates in the optimiser with c = interval / (interval + 1):
 * lr * c and betas ** c. An interval of 0 or null (no lazy regulariser) leaves them as they are.
 */
export function lazyRegularizationAdam(
  base: AdamHyperparameters,
  interval: number | null,
): AdamHyperparameters {
  if (!interval) return { ...base };
  if (!(Number.isInteger(interval) && interval > 0)) {
    throw new RangeError(`regularisation interval must be a positive integer, got ${interval}`);
  }
  const c = interval / (interval + 1);
  return { lr: base.lr * c, beta1: base.beta1 ** c, beta2: base.beta2 ** c, eps: base.eps };
}

/**
 * Generator EMA decay per step: the EMA's half-life is `emaKimg` thousand images, optionally
 * ramped up as `rampup` times the images seen so far (official ema_rampup) early in training.
 */
export function emaBeta(
  batchSize: number,
  emaKimg: number,
  opts: { rampup?: number | null; imagesSeen?: number } = {},
): number {
  let emaImages = emaKimg * 1000;
  if (opts.rampup != null) emaImages = Math.min(emaImages, (opts.imagesSeen ?? 0) * opts.rampup);
  return 0.5 ** (batchSize / Math.max(emaImages, 1e-8));
}

/** The official `auto` R1 weight: 0.0002 * resolution^2 / batch size. */
export function autoR1Gamma(resolution: number, batchSize: number): number {
  return (0.0002 * resolution * resolution) / batchSize;
}
