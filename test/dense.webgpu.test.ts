// The webgpu dense program (matrix product, gains, bias and activation in one dispatch) against the
// stock tfjs composite it replaces, on the webgpu backend (lavapipe in CI): values, first-order
// gradients in every input, and the second-order gradient path length takes through the affine
// layers, at odd shapes, batch 1 and > 1, every transpose and squared operand.
import { describe, expect, it } from 'vitest';
import { readTensor } from '../src/model/backend.ts';
import { broadcastCopies } from '../src/model/networks/layers.ts';
import { type DenseAttrs, dense } from '../src/model/ops/webgpu/dense.ts';
import { tf } from '../src/model/tf.ts';
import { expectClose, seeded, useWebGpuKernels } from './support/webgpu-kernels.ts';

const skipWithoutWebGpu = useWebGpuKernels();

/** The tfjs ops the program replaces. */
function composite(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  attrs: DenseAttrs,
  bias: tf.Tensor | null = null,
): tf.Tensor2D {
  const fa = attrs.square === 'a' ? tf.square(a) : a;
  const fb = attrs.square === 'b' ? tf.square(b) : b;
  let t: tf.Tensor = tf.mul(tf.matMul(fa, fb, attrs.transposeA, attrs.transposeB), attrs.alpha);
  if (bias) t = tf.add(t, tf.mul(bias, attrs.beta));
  if (attrs.slope !== 1) t = tf.leakyRelu(t, attrs.slope);
  return tf.mul(t, attrs.gain) as tf.Tensor2D;
}

interface Case {
  name: string;
  rows: number;
  depth: number;
  cols: number;
  attrs: DenseAttrs;
  bias: boolean;
}

const base = { transposeA: false, transposeB: false, square: 'none' as const, beta: 0, slope: 1, gain: 1 };

const CASES: Case[] = [
  // A mapping layer: lrelu, lr multiplier 0.01 in both gains.
  {
    name: 'mapping layer, batch 3',
    rows: 3,
    depth: 13,
    cols: 7,
    attrs: { ...base, alpha: 0.01 / Math.sqrt(13), beta: 0.01, slope: 0.2, gain: Math.SQRT2 },
    bias: true,
  },
  // An affine layer (linear, the toRGB gain folded into both gains), batch 1.
  {
    name: 'affine layer, batch 1',
    rows: 1,
    depth: 9,
    cols: 5,
    attrs: { ...base, alpha: 0.7 / 3, beta: 0.7 },
    bias: true,
  },
  // The demodulation sums: styles squared on the fly.
  {
    name: 'styles squared (demodulation)',
    rows: 2,
    depth: 6,
    cols: 11,
    attrs: { ...base, square: 'a', alpha: 1 },
    bias: false,
  },
  // The weights' squared sums over the taps: a row of ones times the squared weights.
  {
    name: 'weights squared (tap sums)',
    rows: 1,
    depth: 9,
    cols: 10,
    attrs: { ...base, square: 'b', alpha: 1 },
    bias: false,
  },
  // The gradients' forms: transposed operands (with a square on either side and an activation).
  {
    name: 'A transposed, B squared, lrelu',
    rows: 5,
    depth: 3,
    cols: 4,
    attrs: { ...base, transposeA: true, square: 'b', alpha: 0.5, beta: 2, slope: 0.2, gain: 1.3 },
    bias: true,
  },
  {
    name: 'B transposed, A squared',
    rows: 4,
    depth: 7,
    cols: 3,
    attrs: { ...base, transposeB: true, square: 'a', alpha: 1.5 },
    bias: false,
  },
  {
    name: 'both transposed, lrelu',
    rows: 3,
    depth: 5,
    cols: 6,
    attrs: {
      ...base,
      transposeA: true,
      transposeB: true,
      alpha: 0.8,
      beta: 0.3,
      slope: 0.2,
      gain: Math.SQRT2,
    },
    bias: true,
  },
];

function operands(c: Case, seed: number) {
  const { transposeA: tA, transposeB: tB } = c.attrs;
  const a = seeded(tA ? [c.depth, c.rows] : [c.rows, c.depth], seed) as tf.Tensor2D;
  const b = seeded(tB ? [c.cols, c.depth] : [c.depth, c.cols], seed + 1) as tf.Tensor2D;
  const bias = c.bias ? seeded([c.cols], seed + 2, 0.5) : null;
  return { a, b, bias };
}

describe('dense program (product, gains, bias, activation) on webgpu', () => {
  for (const c of CASES) {
    it(`${c.name}: values and first-order gradients match the composite`, async (ctx) => {
      skipWithoutWebGpu(ctx);
      const { a, b, bias } = operands(c, 1);
      const r = seeded([c.rows, c.cols], 9);
      const inputs = [a, b, ...(bias ? [bias] : [])];
      const loss =
        (impl: typeof dense) =>
        (...args: tf.Tensor[]) =>
          tf.sum(tf.mul(impl(args[0] as tf.Tensor2D, args[1] as tf.Tensor2D, c.attrs, args[2] ?? null), r));
      await expectClose(dense(a, b, c.attrs, bias), composite(a, b, c.attrs, bias), 'values');
      const ours = tf.grads(loss(dense))(inputs);
      const stock = tf.grads(loss(composite))(inputs);
      for (let i = 0; i < inputs.length; i++) await expectClose(ours[i], stock[i], `gradient ${i}`, 1e-4);
    });
  }

  it('second order: the gradient of a squared input gradient matches the composite (path length)', async (ctx) => {
    skipWithoutWebGpu(ctx);
    // Two layers as mapping and affine: |d loss / d x|^2 differentiated in both weights and biases.
    const l1 = CASES[0];
    const l2 = { ...CASES[1].attrs };
    const x = seeded([3, 13], 21) as tf.Tensor2D;
    const w1 = seeded([13, 7], 22) as tf.Tensor2D;
    const b1 = seeded([7], 23, 0.5);
    const w2 = seeded([7, 5], 24) as tf.Tensor2D;
    const b2 = seeded([5], 25, 0.5);
    const r = seeded([3, 5], 26);
    const penalty =
      (impl: typeof dense) =>
      (...p: tf.Tensor[]) => {
        const gx = tf.grad((xx: tf.Tensor) => {
          const h = impl(tf.mul(xx, 1) as tf.Tensor2D, p[0] as tf.Tensor2D, l1.attrs, p[1]);
          // The demodulation sum of the result too (squared operand).
          const s = impl(h, p[2] as tf.Tensor2D, l2, p[3]);
          const v = impl(s, p[2] as tf.Tensor2D, { ...base, transposeB: true, square: 'a', alpha: 1 }, null);
          return tf.add(tf.sum(tf.mul(s, r)), tf.sum(v));
        })(x);
        return tf.sum(tf.square(tf.mul(gx, tf.add(x, 2))));
      };
    const params = [w1, b1, w2, b2];
    const ours = tf.grads(penalty(dense))(params);
    const stock = tf.grads(penalty(composite))(params);
    for (let i = 0; i < params.length; i++) await expectClose(ours[i], stock[i], `second order ${i}`, 1e-4);
  });

  it('second order through the activation mask alone: a zero bias gradient, as the composite gives', async (ctx) => {
    skipWithoutWebGpu(ctx);
    // D's fc layer before its linear output layer: R1 reaches the fc bias only through the mask.
    const x = seeded([3, 4], 41) as tf.Tensor2D;
    const w = seeded([4, 5], 42) as tf.Tensor2D;
    const w2 = seeded([5, 1], 43) as tf.Tensor2D;
    const b = tf.variable(seeded([5], 44));
    const layer = { ...base, alpha: 0.5, beta: 1, slope: 0.2, gain: Math.SQRT2 };
    const penalty = () => {
      const gx = tf.grad((xx: tf.Tensor) =>
        tf.sum(dense(dense(xx as tf.Tensor2D, w, layer, b), w2, { ...base, alpha: 1 })),
      )(x);
      return tf.sum(tf.square(gx)) as tf.Scalar;
    };
    const { grads } = tf.variableGrads(penalty, [b]);
    expect(Object.keys(grads)).toEqual([b.name]);
    expect(Array.from(await readTensor(grads[b.name])).every((v) => v === 0)).toBe(true);
    b.dispose();
  });

  it('broadcastCopies equals tf.tile, and so does its gradient', async (ctx) => {
    skipWithoutWebGpu(ctx);
    const x = seeded([3, 1, 5], 31);
    const r = seeded([3, 4, 5], 32);
    await expectClose(broadcastCopies(x, [3, 4, 5]), tf.tile(x, [1, 4, 1]), 'values');
    const ours = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(broadcastCopies(t, [3, 4, 5]), r)))(x);
    const stock = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.tile(t, [1, 4, 1]), r)))(x);
    await expectClose(ours, stock, 'gradient');
  });
});
