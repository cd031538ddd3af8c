// The webgpu modulation and per-channel sum programs against the stock tfjs composites they
// replace (a broadcast multiply; a multiply and a sum over the pixels), on the webgpu backend
// (lavapipe in CI): values, first-order gradients in every input, and second order (path length
// differentiates the styles' gradient again), at odd shapes, batch 1 and > 1.
import { describe, expect, it } from 'vitest';
import { channelSum, channelSumSplits, modulate } from '../src/model/ops/webgpu/modulate.ts';
import { tf } from '../src/model/tf.ts';
import { expectClose, seeded, useWebGpuKernels } from './support/webgpu-kernels.ts';

const skipWithoutWebGpu = useWebGpuKernels();

type ModulateFn = (x: tf.Tensor, s: tf.Tensor) => tf.Tensor;
type ChannelSumFn = (a: tf.Tensor, b: tf.Tensor | null, overBatch: boolean) => tf.Tensor;

/** s [N or 1, C] broadcast over x's pixels, as the composite writes it. */
function stockModulate(x: tf.Tensor, s: tf.Tensor): tf.Tensor {
  const shape = x.shape.map((d, i) => (i === 0 ? s.shape[0] : i === x.rank - 1 ? d : 1));
  return tf.mul(x, tf.reshape(s, shape));
}

function stockChannelSum(a: tf.Tensor, b: tf.Tensor | null, overBatch: boolean): tf.Tensor {
  const t = b ? tf.mul(a, b) : a;
  const axes = [...Array(a.rank - 1).keys()].slice(overBatch ? 0 : 1);
  return tf.reshape(tf.sum(t, axes), [overBatch ? 1 : a.shape[0], a.shape[a.rank - 1]]);
}

// Odd sizes; channel counts around the programs' 16-channel tiles; more pixels than the 16 lanes.
const SHAPES = [
  [1, 3, 5, 7],
  [3, 4, 9, 17],
  [2, 33, 40],
  [4, 6],
];

describe('style modulation on webgpu', () => {
  for (const shape of SHAPES) {
    for (const rows of [shape[0], 1]) {
      it(`x [${shape}], styles [${rows}, ${shape[shape.length - 1]}]: values and gradients match the composite`, async (ctx) => {
        skipWithoutWebGpu(ctx);
        const x = seeded(shape, 1);
        const s = seeded([rows, shape[shape.length - 1]], 2);
        const r = seeded(shape, 3);
        await expectClose(modulate(x, s), stockModulate(x, s), 'values');
        const loss = (f: ModulateFn) => (xx: tf.Tensor, ss: tf.Tensor) => tf.sum(tf.mul(f(xx, ss), r));
        const ours = tf.grads(loss(modulate))([x, s]);
        const stock = tf.grads(loss(stockModulate))([x, s]);
        await expectClose(ours[0], stock[0], 'gradient in x');
        await expectClose(ours[1], stock[1], 'gradient in s', 1e-4);
      });
    }
  }

  it('second order: the styles gradient of a squared input gradient matches the composite (path length)', async (ctx) => {
    skipWithoutWebGpu(ctx);
    const shape = [3, 5, 6, 18];
    const x = seeded(shape, 11);
    const s = seeded([3, 18], 12);
    const r = seeded(shape, 13);
    // |d sum(f(x s)^2 r) / dx|^2 differentiated in s: the input gradient depends on s twice.
    const penalty = (f: ModulateFn) => (ss: tf.Tensor) => {
      const gx = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.square(f(tf.mul(xx, 1), ss)), r)))(x);
      return tf.sum(tf.square(gx));
    };
    await expectClose(
      tf.grad(penalty(modulate))(s),
      tf.grad(penalty(stockModulate))(s),
      'second order',
      1e-4,
    );
  });
});

// Long sums, split across workgroups and added by a second pass (per sample; over the batch).
const SPLIT_SHAPES = [
  [1, 100, 90, 3],
  [3, 60, 50, 17],
];

describe('per-channel sums on webgpu', () => {
  it('splits long sums only', () => {
    expect(channelSumSplits(1, 3, 9000).splits).toBe(2);
    expect(channelSumSplits(1, 17, 3 * 3000).splits).toBe(2);
    expect(channelSumSplits(3, 17, 3000).splits).toBe(1);
    expect(channelSumSplits(32, 512, 64 * 64).splits).toBe(1);
    // A bias gradient at 256x256, batch 32, 64 channels: 64 workgroups per channel tile.
    const { splits, perSplit } = channelSumSplits(1, 64, 32 * 256 * 256);
    expect(splits).toBe(64);
    expect(splits * perSplit).toBe(32 * 256 * 256);
  });

  for (const shape of [...SHAPES, ...SPLIT_SHAPES]) {
    for (const product of [false, true]) {
      for (const overBatch of [false, true]) {
        it(`[${shape}], ${product ? 'a * b' : 'a'}, ${overBatch ? 'over the batch' : 'per sample'}: values and gradients match the composite`, async (ctx) => {
          skipWithoutWebGpu(ctx);
          const a = seeded(shape, 21);
          const b = product ? seeded(shape, 22) : null;
          const r = seeded([overBatch ? 1 : shape[0], shape[shape.length - 1]], 23);
          await expectClose(channelSum(a, b, overBatch), stockChannelSum(a, b, overBatch), 'values', 1e-4);
          const inputs = b ? [a, b] : [a];
          const loss = (f: ChannelSumFn) => (aa: tf.Tensor, bb?: tf.Tensor) =>
            tf.sum(tf.mul(f(aa, bb ?? null, overBatch), r));
          const ours = tf.grads(loss(channelSum))(inputs);
          const stock = tf.grads(loss(stockChannelSum))(inputs);
          for (let i = 0; i < inputs.length; i++) await expectClose(ours[i], stock[i], `gradient ${i}`);
        });
      }
    }
  }

  it('second order through the product', async (ctx) => {
    skipWithoutWebGpu(ctx);
    const shape = [2, 7, 5, 19];
    const a = seeded(shape, 31);
    const b = seeded(shape, 32);
    const r = seeded([2, 19], 33);
    const penalty = (f: ChannelSumFn) => (bb: tf.Tensor) => {
      const ga = tf.grad((aa: tf.Tensor) => tf.sum(tf.mul(tf.square(f(tf.mul(aa, 1), bb, false)), r)))(a);
      return tf.sum(tf.square(ga));
    };
    await expectClose(
      tf.grad(penalty(channelSum))(b),
      tf.grad(penalty(stockChannelSum))(b),
      'second order',
      1e-4,
    );
  });
});
