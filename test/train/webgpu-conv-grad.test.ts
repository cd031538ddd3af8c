// The webgpu filter-gradient program (src/model/ops/webgpu/conv2d_filter_grad.ts) and input
// gradient (tfjs's transposed conv) against the composites, on webgpu (lavapipe here and in CI) and
// on cpu: odd channel counts, 1x1 and
// 3x3 kernels, stride 1 and 2, skewed padding, batch 1 and >1, single- and split-K dispatches, and
// the R1-shaped second-order gradient that runs through it.
import { afterAll, describe, expect, it } from 'vitest';
import type { SpatialPadding } from '../../src/model/ops/conv.ts';
import {
  conv2dBackpropFilterComposite,
  conv2dBackpropFilterDifferentiable,
  conv2dBackpropInputComposite,
  conv2dBackpropInputDifferentiable,
  conv2dDifferentiable,
} from '../../src/model/ops/grad/conv2d.ts';
import { splitK } from '../../src/model/ops/webgpu/conv2d_filter_grad.ts';
import { tf } from '../../src/model/tf.ts';
import { backendAvailable } from '../parity/suite.ts';
import { fromHost, type HostTensor, onCpu, relativeError, toHost } from './support.ts';

/** Seeded uniform values in [-1, 1) without a backend (randomHost needs dataSync, which webgpu lacks). */
function hostRandom(shape: number[], seed: number): HostTensor {
  let state = seed >>> 0;
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return { shape, data };
}

interface FilterCase {
  name: string;
  input: [number, number, number, number];
  kernel: [number, number];
  outChannels: number;
  stride: 1 | 2;
  pad: SpatialPadding;
}

const same: SpatialPadding = [
  [1, 1],
  [1, 1],
];
const none: SpatialPadding = [
  [0, 0],
  [0, 0],
];

const CASES: FilterCase[] = [
  {
    name: '3x3 same, odd channels, batch 1',
    input: [1, 5, 7, 3],
    kernel: [3, 3],
    outChannels: 5,
    stride: 1,
    pad: same,
  },
  { name: '3x3 same, batch 3', input: [3, 6, 6, 4], kernel: [3, 3], outChannels: 2, stride: 1, pad: same },
  {
    name: '3x3 stride 2, odd size',
    input: [2, 7, 6, 3],
    kernel: [3, 3],
    outChannels: 3,
    stride: 2,
    pad: same,
  },
  {
    name: '3x3 stride 2, skewed pad',
    input: [1, 6, 7, 2],
    kernel: [3, 3],
    outChannels: 3,
    stride: 2,
    pad: [
      [0, 2],
      [1, 0],
    ],
  },
  { name: '1x1', input: [2, 4, 5, 5], kernel: [1, 1], outChannels: 3, stride: 1, pad: none },
  { name: '1x1 stride 2', input: [2, 5, 4, 3], kernel: [1, 1], outChannels: 7, stride: 2, pad: none },
  {
    name: '4x4 stride 2 (a down-conv after its FIR)',
    input: [2, 9, 9, 3],
    kernel: [4, 4],
    outChannels: 2,
    stride: 2,
    pad: none,
  },
  // Several 32x32 tiles in both directions and a reduction long enough to be split.
  {
    name: '3x3, 37 -> 33 channels, split K',
    input: [2, 24, 20, 37],
    kernel: [3, 3],
    outChannels: 33,
    stride: 1,
    pad: same,
  },
  {
    name: '1x1, split K, one tile',
    input: [3, 32, 32, 2],
    kernel: [1, 1],
    outChannels: 3,
    stride: 1,
    pad: none,
  },
];

function outputShape(c: FilterCase): number[] {
  const [n, h, w] = c.input;
  const out = (size: number, p: [number, number], k: number) =>
    Math.floor((size + p[0] + p[1] - k) / c.stride) + 1;
  return [n, out(h, c.pad[0], c.kernel[0]), out(w, c.pad[1], c.kernel[1]), c.outChannels];
}

describe('splitK', () => {
  it('covers the reduction exactly once, in slices of whole tiles, splitting long reductions only', () => {
    for (const [rows, columns, k] of [
      [27, 5, 35],
      [333, 33, 960],
      [2, 3, 3072],
      [4608, 512, 131072],
      [9, 16, 4 * 256 * 256],
    ]) {
      const { splits, kPerSplit } = splitK(rows, columns, k);
      expect(kPerSplit % 32).toBe(0);
      expect(splits * kPerSplit).toBeGreaterThanOrEqual(k);
      expect((splits - 1) * kPerSplit).toBeLessThan(k);
      expect(splits * rows * columns).toBeLessThanOrEqual(16 * 1024 * 1024);
    }
    expect(splitK(27, 5, 35).splits).toBe(1);
    expect(splitK(9, 16, 4 * 256 * 256).splits).toBeGreaterThan(1);
  });
});

const available = await backendAvailable('webgpu');

describe.skipIf(!available)('conv2d filter gradient program on webgpu', () => {
  afterAll(() => {
    tf.disposeVariables();
  });

  it.each(CASES)('$name: matches the composite on cpu and on webgpu', async (c) => {
    expect(tf.getBackend()).toBe('webgpu');
    const x = hostRandom(c.input, 11);
    const dy = hostRandom(outputShape(c), 12);
    const args = (xt: tf.Tensor, dyt: tf.Tensor) =>
      [xt as tf.Tensor4D, dyt as tf.Tensor4D, c.stride, c.pad, c.kernel] as const;

    const program = conv2dBackpropFilterDifferentiable(...args(fromHost(x), fromHost(dy)));
    const composite = conv2dBackpropFilterComposite(...args(fromHost(x), fromHost(dy)));
    const ours = await toHost(program);
    const webgpuComposite = await toHost(composite);
    tf.dispose([program, composite]);
    const reference = await onCpu(async () =>
      toHost(conv2dBackpropFilterComposite(...args(fromHost(x), fromHost(dy)))),
    );
    expect(ours.shape).toEqual([...c.kernel, c.input[3], c.outChannels]);
    expect(relativeError(ours, reference)).toBeLessThan(1e-5);
    expect(relativeError(ours, webgpuComposite)).toBeLessThan(1e-5);
  });

  it('runs one program for the filter gradient: no pad, transpose, slice or matMul', async () => {
    const c = CASES[2];
    const x = fromHost(hostRandom(c.input, 31)) as tf.Tensor4D;
    const dy = fromHost(hostRandom(outputShape(c), 32)) as tf.Tensor4D;
    const info = await tf.profile(() => conv2dBackpropFilterDifferentiable(x, dy, c.stride, c.pad, c.kernel));
    expect(info.kernelNames).toEqual(['FacestyleConv2DBackpropFilter']);
    tf.dispose([x, dy]);
  });

  it.each(CASES)(
    '$name: the input gradient (tfjs transposed conv) matches the composite on cpu',
    async (c) => {
      const dy = hostRandom(outputShape(c), 41);
      const w = hostRandom([...c.kernel, c.input[3], c.outChannels], 42);
      const size: [number, number] = [c.input[1], c.input[2]];
      const args = (dyt: tf.Tensor, wt: tf.Tensor) =>
        [dyt as tf.Tensor4D, wt as tf.Tensor4D, c.stride, c.pad, size] as const;
      const program = conv2dBackpropInputDifferentiable(...args(fromHost(dy), fromHost(w)));
      const ours = await toHost(program);
      tf.dispose(program);
      // cpu runs the other form (a forward conv with the flipped kernel at stride 1).
      const reference = await onCpu(async () =>
        toHost(conv2dBackpropInputComposite(...args(fromHost(dy), fromHost(w)))),
      );
      expect(ours.shape).toEqual(c.input);
      expect(relativeError(ours, reference)).toBeLessThan(1e-5);
    },
  );

  it('runs one program for a stride-1 input gradient: no reverse or transpose of the kernel', async () => {
    const c = CASES[0];
    const dy = fromHost(hostRandom(outputShape(c), 51)) as tf.Tensor4D;
    const w = fromHost(hostRandom([...c.kernel, c.input[3], c.outChannels], 52)) as tf.Tensor4D;
    const info = await tf.profile(() =>
      conv2dBackpropInputDifferentiable(dy, w, 1, c.pad, [c.input[1], c.input[2]]),
    );
    expect(info.kernelNames.filter((name) => name !== 'FacestyleConv2DBackpropInput')).toEqual([
      'Conv2DBackpropInput',
    ]);
    tf.dispose([dy, w]);
  });

  it('leaves no tensor behind (the split-K partial sums are freed)', async () => {
    const c = CASES[7];
    const x = fromHost(hostRandom(c.input, 21));
    const [n, outH, outW] = outputShape(c);
    const dy = fromHost(hostRandom(outputShape(c), 22));
    expect(
      splitK(c.kernel[0] * c.kernel[1] * c.input[3], c.outChannels, n * outH * outW).splits,
    ).toBeGreaterThan(1);
    const before = tf.memory().numTensors;
    const bytesBefore = tf.memory().numBytes;
    const dw = conv2dBackpropFilterDifferentiable(
      x as tf.Tensor4D,
      dy as tf.Tensor4D,
      c.stride,
      c.pad,
      c.kernel,
    );
    await dw.data();
    dw.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytesBefore);
    tf.dispose([x, dy]);
  });

  it('second order: the gradient in the weights of |d f / d x|^2 (R1-shaped) matches native cpu', async () => {
    // Two convolutions with softplus between, as test/train/grad.test.ts: the filter gradient sits on
    // the double-backward path, through the gradient of the input-gradient kernel.
    const x = hostRandom([2, 6, 6, 2], 5);
    const w1 = hostRandom([3, 3, 2, 3], 6);
    const w2 = hostRandom([3, 3, 3, 2], 7);
    const r = hostRandom([2, 3, 3, 2], 8);
    const twoLayer = (xt: tf.Tensor, a: tf.Tensor, b: tf.Tensor, native: boolean) => {
      const conv = (input: tf.Tensor, w: tf.Tensor, stride: 1 | 2) =>
        native
          ? tf.conv2d(input as tf.Tensor4D, w as tf.Tensor4D, stride, [[0, 0], ...same, [0, 0]])
          : conv2dDifferentiable(input as tf.Tensor4D, w as tf.Tensor4D, stride, same);
      const h = tf.softplus(conv(xt, a, 2));
      return tf.sum(tf.mul(tf.softplus(conv(h, b, 1)), fromHost(r))) as tf.Scalar;
    };
    const penaltyGrads = (native: boolean) =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => {
        const gx = tf.grad((xi: tf.Tensor) => twoLayer(xi, a, b, native))(fromHost(x));
        return tf.sum(tf.square(gx)) as tf.Scalar;
      })([fromHost(w1), fromHost(w2)]);
    const ours = await Promise.all(penaltyGrads(false).map(toHost));
    const reference = await onCpu(async () => Promise.all(penaltyGrads(true).map(toHost)));
    expect(relativeError(ours[0], reference[0])).toBeLessThan(1e-4);
    expect(relativeError(ours[1], reference[1])).toBeLessThan(1e-4);
  });
});
