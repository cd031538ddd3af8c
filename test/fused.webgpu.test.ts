// The fused webgpu kernels against the stock tfjs composites they replace, on the webgpu backend
// (lavapipe in CI): values, first-order gradients in every input, and the second-order gradient
// path length and R1 take, at odd shapes, batch 1 and > 1, with and without each optional input.
import { describe, expect, it } from 'vitest';
import { readTensor } from '../src/model/backend.ts';
import { DEMOD_EPS, fusedBiasAct } from '../src/model/ops/fused_bias_act.ts';
import {
  conv2dBackpropFilterDifferentiable,
  conv2dBackpropInputDifferentiable,
} from '../src/model/ops/grad/conv2d.ts';
import { tf } from '../src/model/tf.ts';
import { expectClose, seeded, useWebGpuKernels } from './support/webgpu-kernels.ts';

const skipWithoutWebGpu = useWebGpuKernels();

interface Case {
  name: string;
  shape: number[];
  d: number[] | null;
  noise: number[] | null;
  b: number[] | null;
  alpha: number;
  gain: number;
  clamp: number;
}

const CASES: Case[] = [
  // The synthesis layer: demodulation, per-pixel noise shared by the batch, bias, lrelu, clamp.
  {
    name: 'modulated epilogue, batch 3',
    shape: [3, 5, 7, 6],
    d: [3, 1, 1, 6],
    noise: [1, 5, 7, 1],
    b: [6],
    alpha: 0.2,
    gain: Math.SQRT2 * 0.7,
    clamp: 0.9,
  },
  // Random noise per sample, batch 1, odd channel count.
  {
    name: 'per-sample noise, batch 1',
    shape: [1, 3, 3, 5],
    d: [1, 1, 1, 5],
    noise: [1, 3, 3, 1],
    b: [5],
    alpha: 0.2,
    gain: Math.SQRT2,
    clamp: -1,
  },
  // bias_act of a conv layer (no demodulation, no noise).
  {
    name: 'bias_act, conv layer',
    shape: [2, 4, 3, 7],
    d: null,
    noise: null,
    b: [7],
    alpha: 0.2,
    gain: Math.SQRT2,
    clamp: 0.5,
  },
  // A fully connected layer's bias_act, linear with a clamp (toRGB-like), rank 2.
  {
    name: 'linear with clamp, rank 2',
    shape: [3, 9],
    d: null,
    noise: null,
    b: [9],
    alpha: 1,
    gain: 1,
    clamp: 0.3,
  },
];

function composite(x: tf.Tensor, d: tf.Tensor | null, noise: tf.Tensor | null, b: tf.Tensor | null, c: Case) {
  let t = x;
  if (d) t = tf.mul(t, d);
  if (noise) t = tf.add(t, noise);
  if (b) t = tf.add(t, b);
  let u = c.alpha === 1 ? t : tf.leakyRelu(t, c.alpha);
  u = tf.mul(u, c.gain);
  return c.clamp >= 0 ? tf.clipByValue(u, -c.clamp, c.clamp) : u;
}

function fused(x: tf.Tensor, d: tf.Tensor | null, noise: tf.Tensor | null, b: tf.Tensor | null, c: Case) {
  return fusedBiasAct({ x, d, noise, b }, { alpha: c.alpha, gain: c.gain, clamp: c.clamp });
}

describe('fused bias_act / modulated-conv epilogue on webgpu', () => {
  for (const c of CASES) {
    it(`${c.name}: values and first-order gradients match the composite`, async (ctx) => {
      skipWithoutWebGpu(ctx);
      const x = seeded(c.shape, 1);
      const d = c.d ? tf.add(seeded(c.d, 2, 0.3), 1) : null;
      const noise = c.noise ? seeded(c.noise, 3, 0.5) : null;
      const b = c.b ? seeded(c.b, 4, 0.2) : null;
      const r = seeded(c.shape, 5);
      const inputs = [x, d, noise, b].filter((t): t is tf.Tensor => t !== null);
      const loss =
        (impl: typeof fused) =>
        (...args: tf.Tensor[]) => {
          const [xa, ...rest] = args;
          let k = 0;
          const pick = (present: boolean) => (present ? rest[k++] : null);
          const y = impl(xa, pick(d !== null), pick(noise !== null), pick(b !== null), c);
          return tf.sum(tf.mul(y, r));
        };
      await expectClose(fused(x, d, noise, b, c), composite(x, d, noise, b, c), 'values');
      const ours = tf.grads(loss(fused))(inputs);
      const stock = tf.grads(loss(composite))(inputs);
      for (let i = 0; i < inputs.length; i++) await expectClose(ours[i], stock[i], `gradient ${i}`);
    });
  }

  it('second order: the gradient of a squared input gradient matches the composite (path length, R1)', async (ctx) => {
    skipWithoutWebGpu(ctx);
    const c = CASES[0];
    const x = seeded(c.shape, 11);
    const d = tf.add(seeded(c.d!, 12, 0.3), 1);
    const noise = seeded(c.noise!, 13, 0.5);
    const b = seeded(c.b!, 14, 0.2);
    const r = seeded(c.shape, 15);
    // |d sum(f(x) r) / dx|^2 differentiated in d and b: the chain R1 and path length take.
    const penalty = (impl: typeof fused) => (dd: tf.Tensor, bb: tf.Tensor) => {
      const gx = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(impl(tf.mul(xx, 1), dd, noise, bb, c), r)))(x);
      return tf.sum(tf.square(tf.mul(gx, tf.add(x, 2))));
    };
    const ours = tf.grads(penalty(fused))([d, b]);
    const stock = tf.grads(penalty(composite))([d, b]);
    await expectClose(ours[0], stock[0], 'second-order gradient in d', 1e-4);
    // b enters only through piecewise-constant masks: its second-order gradient is zero in both.
    expect(Array.from(await readTensor(ours[1])).every((v) => v === 0)).toBe(true);
    expect(Array.from(await readTensor(stock[1])).every((v) => v === 0)).toBe(true);
  });
});

describe('implicit-GEMM filter gradient on webgpu', () => {
  const cases: Array<{
    x: number[];
    k: number;
    o: number;
    stride: 1 | 2;
    pad: [[number, number], [number, number]];
  }> = [
    {
      x: [3, 7, 5, 4],
      k: 3,
      o: 5,
      stride: 1,
      pad: [
        [1, 1],
        [1, 1],
      ],
    },
    {
      x: [1, 9, 6, 3],
      k: 3,
      o: 2,
      stride: 2,
      pad: [
        [1, 2],
        [0, 1],
      ],
    },
    {
      x: [2, 5, 5, 6],
      k: 1,
      o: 3,
      stride: 1,
      pad: [
        [0, 0],
        [0, 0],
      ],
    },
    // Many pixels, few weights: split over the reduction, then summed.
    {
      x: [2, 33, 31, 2],
      k: 3,
      o: 2,
      stride: 1,
      pad: [
        [1, 1],
        [1, 1],
      ],
    },
  ];
  for (const c of cases) {
    it(`x [${c.x}], ${c.k}x${c.k} -> ${c.o}, stride ${c.stride}, pad ${JSON.stringify(c.pad)}: equal tfjs's filter and input gradients`, async (ctx) => {
      skipWithoutWebGpu(ctx);
      const x = seeded(c.x, 21) as tf.Tensor4D;
      const w = seeded([c.k, c.k, c.x[3], c.o], 22) as tf.Tensor4D;
      const padding: [[number, number], [number, number], [number, number], [number, number]] = [
        [0, 0],
        c.pad[0],
        c.pad[1],
        [0, 0],
      ];
      const y = tf.conv2d(x, w, c.stride, padding);
      const r = seeded(y.shape, 23) as tf.Tensor4D;
      const stock = tf.grad((ww: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(x, ww as tf.Tensor4D, c.stride, padding), r)),
      )(w);
      const ours = conv2dBackpropFilterDifferentiable(x, r, c.stride, c.pad, [c.k, c.k]);
      await expectClose(ours, stock, 'filter gradient', 1e-5);
      // The input gradient (tfjs's transposed conv with the padding as given) on the same shapes.
      const stockInput = tf.grad((xx: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, w, c.stride, padding), r)),
      )(x);
      const oursInput = conv2dBackpropInputDifferentiable(r, w, c.stride, c.pad, [c.x[1], c.x[2]]);
      await expectClose(oursInput, stockInput, 'input gradient', 1e-5);
    });
  }
});

describe('fused synthesis-layer epilogue (demodulation sum and noise strength in the pass)', () => {
  // z = clamp(gain * lrelu(x / sqrt(v + eps) + noise * strength + b)), as the synthesis layer runs it.
  const c = { alpha: 0.2, gain: Math.SQRT2, clamp: 0.8 };
  const stock = (x: tf.Tensor, v: tf.Tensor, noise: tf.Tensor, ns: tf.Tensor, b: tf.Tensor) => {
    const t = tf.add(tf.add(tf.mul(x, tf.rsqrt(tf.add(v, DEMOD_EPS))), tf.mul(noise, ns)), b);
    return tf.clipByValue(tf.mul(tf.leakyRelu(t, c.alpha), c.gain), -c.clamp, c.clamp);
  };
  const ours = (x: tf.Tensor, v: tf.Tensor, noise: tf.Tensor, ns: tf.Tensor, b: tf.Tensor) =>
    fusedBiasAct({ x, v, noise, ns, b }, c);

  for (const [n, h, w, ch] of [
    [1, 3, 5, 4],
    [3, 4, 4, 7],
  ]) {
    it(`[${n},${h},${w},${ch}]: values, first- and second-order gradients match the composite`, async (ctx) => {
      skipWithoutWebGpu(ctx);
      const x = seeded([n, h, w, ch], 31);
      const v = tf.add(tf.square(seeded([n, 1, 1, ch], 32)), 0.5);
      const noise = seeded([n, h, w, 1], 33);
      const ns = tf.tensor1d([0.3]);
      const b = seeded([ch], 34, 0.2);
      const r = seeded([n, h, w, ch], 35);
      await expectClose(ours(x, v, noise, ns, b), stock(x, v, noise, ns, b), 'values');
      const loss =
        (f: typeof ours) =>
        (...a: tf.Tensor[]) =>
          tf.sum(tf.mul(f(a[0], a[1], a[2], a[3], a[4]), r));
      const g1 = tf.grads(loss(ours))([x, v, noise, ns, b]);
      const g2 = tf.grads(loss(stock))([x, v, noise, ns, b]);
      for (let i = 0; i < 5; i++) await expectClose(g1[i], g2[i], `gradient ${i}`, 1e-4);
      // Second order in v (path length differentiates the input gradient in the weights).
      const penalty = (f: typeof ours) => (vv: tf.Tensor) =>
        tf.sum(
          tf.square(tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(f(tf.mul(xx, 1), vv, noise, ns, b), r)))(x)),
        );
      await expectClose(tf.grad(penalty(ours))(v), tf.grad(penalty(stock))(v), 'second order in v', 1e-4);
    });
  }
});
