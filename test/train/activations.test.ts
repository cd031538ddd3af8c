// Activations that differentiate twice: the explicit forms, and tfjs's own ops once
// installSecondOrderGradients has replaced their gradients. Runs on cpu and wasm.
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import {
  clampDifferentiable,
  installSecondOrderGradients,
  leakyReluDifferentiable,
} from '../../src/model/ops/grad/activations.ts';
import { tf } from '../../src/model/tf.ts';
import { directionalDerivative, dot, randomHost, relativeError, TRAIN_BACKENDS, toHost } from './support.ts';

const VALUES = [-300, -256, -3, -0.5, -1e-3, 0, 1e-3, 0.7, 2, 255.5, 256, 400];

/** d/dw of sum((d/dx sum(f(w * x)))^2): zero-free only if f's gradient is differentiable again. */
function gradientOfGradientNorm(f: (t: tf.Tensor) => tf.Tensor, x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  return tf.grad((wi: tf.Tensor) => {
    const g = tf.grad((xi: tf.Tensor) => tf.sum(f(tf.mul(xi, wi))))(x);
    return tf.sum(tf.square(g));
  })(w);
}

describe('tfjs before installSecondOrderGradients', () => {
  it('cannot differentiate the gradients of leakyRelu and clipByValue twice (the trap this fixes)', async () => {
    await initBackend('cpu');
    const x = tf.tensor1d(VALUES);
    const w = tf.scalar(1.5);
    expect(() => gradientOfGradientNorm((t) => tf.leakyRelu(t, 0.2), x, w)).toThrow(
      /gradient function not found/,
    );
    expect(() => gradientOfGradientNorm((t) => tf.clipByValue(t, -256, 256), x, w)).toThrow(
      /gradient function not found/,
    );
  });
});

for (const backend of TRAIN_BACKENDS) {
  describe(`differentiable activations on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
      installSecondOrderGradients();
    });

    it('leaky ReLU as 0.6x + 0.4|x| equals tfjs leakyRelu (to rounding)', async () => {
      const x = tf.tensor1d(VALUES);
      expect(
        relativeError(await toHost(leakyReluDifferentiable(x)), await toHost(tf.leakyRelu(x, 0.2))),
      ).toBeLessThan(1e-6);
    });

    it('clamp is exact inside the range and clips outside', async () => {
      const x = tf.tensor1d([...VALUES, 12.345678, -0.000123]);
      expect(Array.from(await clampDifferentiable(x, 256).data())).toEqual(
        Array.from(await tf.clipByValue(x, -256, 256).data()),
      );
      expect(() => clampDifferentiable(x, -1)).toThrow(RangeError);
    });

    it('second derivatives through leaky ReLU and clamp equal the analytic ones, both forms', async () => {
      // f(wx) with slope s(wx): d/dx sum f(wx) = w s, so d/dw sum (w s)^2 = 2 w s^2 per element.
      const x = tf.tensor1d(VALUES.filter((v) => v !== 0 && Math.abs(v) !== 256));
      const w = tf.scalar(0.9);
      const xs = Array.from(await x.data());
      const expectedLrelu = xs.reduce((acc, v) => acc + 2 * 0.9 * (v * 0.9 > 0 ? 1 : 0.04), 0);
      const expectedClamp = xs.reduce((acc, v) => acc + (Math.abs(v * 0.9) <= 256 ? 2 * 0.9 : 0), 0);
      for (const [name, f, expected] of [
        ['leakyReluDifferentiable', (t: tf.Tensor) => leakyReluDifferentiable(t), expectedLrelu],
        ['tf.leakyRelu', (t: tf.Tensor) => tf.leakyRelu(t, 0.2), expectedLrelu],
        ['clampDifferentiable', (t: tf.Tensor) => clampDifferentiable(t, 256), expectedClamp],
        ['tf.clipByValue', (t: tf.Tensor) => tf.clipByValue(t, -256, 256), expectedClamp],
      ] as const) {
        const g = (await gradientOfGradientNorm(f, x, w).data())[0];
        expect(g, name).toBeCloseTo(expected, 3);
      }
    });

    it('keeps first-order gradients of the replaced ops unchanged', async () => {
      const x = tf.tensor1d(VALUES.map((v) => v / 100));
      const xs = Array.from(await x.data());
      const expectations: Array<[string, (t: tf.Tensor) => tf.Tensor, (v: number) => number]> = [
        ['leakyRelu', (t) => tf.leakyRelu(t, 0.2), (v) => (v > 0 ? 1 : 0.2)],
        ['clipByValue', (t) => tf.clipByValue(t, -2.56, 2.56), (v) => (Math.abs(v) <= 2.56 ? 1 : 0)],
        ['tanh', tf.tanh, (v) => 1 - Math.tanh(v) ** 2],
        ['sigmoid', tf.sigmoid, (v) => Math.exp(-v) / (1 + Math.exp(-v)) ** 2],
        ['exp', tf.exp, (v) => Math.exp(v)],
      ];
      for (const [name, f, derivative] of expectations) {
        const g = Array.from(
          await tf
            .grad((t: tf.Tensor) => tf.sum(f(t)))(x)
            .data(),
        );
        g.forEach((value, i) => {
          expect(value, `${name}'(${xs[i]})`).toBeCloseTo(derivative(xs[i]), 5);
        });
      }
    });

    it('differentiates tanh, sigmoid and exp twice (their tfjs gradients read a disconnected output)', async () => {
      const x = randomHost([7], 3);
      const w = randomHost([7], 4, 0.5);
      for (const f of [tf.tanh, tf.sigmoid, tf.exp]) {
        const penalty = (wi: tf.Tensor) => {
          const g = tf.grad((xi: tf.Tensor) => tf.sum(f(tf.mul(xi, wi))))(tf.tensor(x.data, x.shape));
          return tf.sum(tf.square(g)) as tf.Scalar;
        };
        const analytic = await toHost(tf.grad(penalty)(tf.tensor(w.data, w.shape)));
        const v = randomHost([7], 5);
        const fd = await directionalDerivative(penalty, [w], [v], 1e-3);
        expect(Math.abs(dot(analytic, v) - fd) / Math.abs(fd)).toBeLessThan(1e-2);
      }
    });

    it('abs differentiates twice: d/dx sum (d/dx sum x|x|)^2 = 8x', async () => {
      const x = tf.tensor1d([-2, -0.5, 0.25, 3]);
      const h = (t: tf.Tensor) => {
        const g = tf.grad((u: tf.Tensor) => tf.sum(tf.mul(u, tf.abs(u))))(t);
        return tf.sum(tf.square(g));
      };
      const got = await toHost(tf.grad(h)(x));
      expect(relativeError(got, { shape: [4], data: Float32Array.from([-16, -4, 2, 24]) })).toBeLessThan(
        1e-6,
      );
    });
  });
}
