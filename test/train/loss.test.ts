// Training objectives and hyperparameter arithmetic against closed forms.
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { tf } from '../../src/model/tf.ts';
import {
  autoR1Gamma,
  discriminatorFakeLoss,
  discriminatorRealLoss,
  emaBeta,
  generatorLoss,
  lazyRegularizationAdam,
  pathLengthPenalty,
  r1Penalty,
} from '../../src/model/train/loss.ts';
import { directionalDerivative, dot, randomHost, toHost } from './support.ts';

const softplus = (x: number) => Math.log1p(Math.exp(x));

describe('losses', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('non-saturating logistic losses are softplus of the logits', async () => {
    const logits = [-3, -0.5, 0, 0.25, 4];
    const t = tf.tensor2d(logits, [5, 1]);
    const close = async (got: tf.Tensor, want: number[]) =>
      Array.from(await got.data()).forEach((v, i) => {
        expect(v).toBeCloseTo(want[i], 5);
      });
    await close(
      generatorLoss(t),
      logits.map((l) => softplus(-l)),
    );
    await close(discriminatorFakeLoss(t), logits.map(softplus));
    await close(
      discriminatorRealLoss(t),
      logits.map((l) => softplus(-l)),
    );
  });

  it('R1 is |d sum D / dx|^2 per image, and differentiable in D weights', async () => {
    // D(x) = sum(w x^2) per image: d/dx = 2 w x, R1 = sum 4 w^2 x^2, d R1 / dw = sum 8 w x^2.
    const x = tf.tensor4d([1, -2, 0.5, 3, 0, 1, -1, 2], [2, 2, 2, 1]);
    const w = tf.variable(tf.scalar(0.7));
    const D = (imgs: tf.Tensor4D) => tf.sum(tf.mul(w, tf.square(imgs)), [1, 2, 3]);
    expect(Array.from(await r1Penalty(D, x).data()).map((v) => Number(v.toFixed(4)))).toEqual([
      Number((4 * 0.49 * (1 + 4 + 0.25 + 9)).toFixed(4)),
      Number((4 * 0.49 * (0 + 1 + 1 + 4)).toFixed(4)),
    ]);
    const { grads } = tf.variableGrads(() => tf.sum(r1Penalty(D, x)) as tf.Scalar, [w]);
    expect((await grads[w.name].data())[0]).toBeCloseTo(8 * 0.7 * (14.25 + 6), 4);
  });

  it('path length: |J^T n| with n = randn / sqrt(HW), running mean lerp, differentiable penalty', async () => {
    // A linear "synthesis": ws [N, 2, 3] -> images [N, 2, 2, 1] through a fixed matrix A [6, 4].
    const a = randomHost([6, 4], 1);
    const ws = randomHost([3, 2, 3], 2);
    const seed = 42;
    const synth = (A: tf.Tensor) => (w: tf.Tensor3D) =>
      tf.reshape(tf.matMul(tf.reshape(w, [3, 6]), A as tf.Tensor2D), [3, 2, 2, 1]) as tf.Tensor4D;
    const A = tf.tensor2d(a.data, [6, 4]);
    const result = pathLengthPenalty(synth(A), tf.tensor3d(ws.data, [3, 2, 3]), 0.5, { decay: 0.1, seed });
    // Reference: J^T n = A n per sample, with the same noise draw.
    const noise = await toHost(tf.div(tf.randomNormal([3, 2, 2, 1], 0, 1, 'float32', seed), 2));
    const lengths: number[] = [];
    for (let n = 0; n < 3; n++) {
      let sq = 0;
      for (let i = 0; i < 6; i++) {
        let g = 0;
        for (let j = 0; j < 4; j++) g += a.data[i * 4 + j] * noise.data[n * 4 + j];
        sq += g * g;
      }
      lengths.push(Math.sqrt(sq / 2));
    }
    const got = Array.from(await result.lengths.data());
    got.forEach((v, i) => {
      expect(v).toBeCloseTo(lengths[i], 5);
    });
    const mean = 0.5 + 0.1 * (lengths.reduce((s, v) => s + v, 0) / 3 - 0.5);
    expect((await result.mean.data())[0]).toBeCloseTo(mean, 5);
    const penalty = Array.from(await result.penalty.data());
    penalty.forEach((v, i) => {
      expect(v).toBeCloseTo((lengths[i] - mean) ** 2, 5);
    });
    result.mean.dispose();

    // The penalty differentiates in the synthesis weights (a second-order gradient).
    const total = (At: tf.Tensor) => {
      const r = pathLengthPenalty(synth(At), tf.tensor3d(ws.data, [3, 2, 3]), 0.5, { decay: 0.1, seed });
      r.mean.dispose();
      return tf.sum(r.penalty) as tf.Scalar;
    };
    const g = await toHost(tf.grad(total)(A));
    const v = randomHost([6, 4], 3);
    const fd = await directionalDerivative(total, [a], [v], 1e-3);
    expect(Math.abs(dot(g, v) - fd) / Math.abs(fd)).toBeLessThan(1e-2);
  });
});

describe('hyperparameters', () => {
  it('lazy regularisation scales lr by c and raises betas to c, c = interval / (interval + 1)', () => {
    const base = { lr: 0.0025, beta1: 0, beta2: 0.99, eps: 1e-8 };
    const d = lazyRegularizationAdam(base, 16);
    expect(d.lr).toBeCloseTo((0.0025 * 16) / 17, 12);
    expect(d.beta1).toBe(0);
    expect(d.beta2).toBeCloseTo(0.99 ** (16 / 17), 12);
    expect(d.eps).toBe(1e-8);
    expect(lazyRegularizationAdam(base, 4).lr).toBeCloseTo(0.002, 12);
    expect(lazyRegularizationAdam(base, null)).toEqual(base);
    expect(lazyRegularizationAdam(base, 0)).toEqual(base);
    expect(() => lazyRegularizationAdam(base, 2.5)).toThrow(RangeError);
  });

  it('G EMA beta halves the old weights every ema_kimg thousand images, with rampup', () => {
    const beta = emaBeta(32, 10);
    expect(beta ** (10_000 / 32)).toBeCloseTo(0.5, 10);
    expect(emaBeta(32, 10, { rampup: 0.05, imagesSeen: 20_000 })).toBeCloseTo(0.5 ** (32 / 1000), 12);
    expect(emaBeta(32, 10, { rampup: 0.05, imagesSeen: 1e9 })).toBe(beta);
    expect(emaBeta(32, 10, { rampup: 0.05, imagesSeen: 0 })).toBe(0);
  });

  it('auto R1 gamma is 0.0002 res^2 / batch', () => {
    expect(autoR1Gamma(256, 16)).toBeCloseTo(0.8192, 12);
    expect(autoR1Gamma(32, 32)).toBeCloseTo(0.0064, 12);
  });
});
