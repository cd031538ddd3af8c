// The one-program upfirdn2d on webgpu (src/model/ops/webgpu/upfirdn2d.ts) against the composite it
// replaces (zero-insert, pad/crop, depthwise FIR, decimate), run on cpu: values, gradients and
// second order (R1 and path length differentiate the FIR's gradient again), odd sizes and channel
// counts, batch 1 and >1, up, down, positive and negative padding.
import { describe, expect, it } from 'vitest';
import { firFilter, type Padding4, RESAMPLE_FILTER, upfirdn2d } from '../../src/model/ops/upfirdn2d.ts';
import { tf } from '../../src/model/tf.ts';
import { backendAvailable } from '../parity/suite.ts';
import { fromHost, type HostTensor, onCpu, relativeError, toHost } from './support.ts';

function hostRandom(shape: number[], seed: number): HostTensor {
  let state = seed >>> 0;
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state / 2 ** 31 - 1;
  }
  return { shape, data };
}

interface FirCase {
  name: string;
  input: [number, number, number, number];
  run: (x: tf.Tensor4D) => tf.Tensor4D;
}

const CASES: FirCase[] = [
  {
    name: 'upsample2d (up 2, gain 4), odd channels, batch 1',
    input: [1, 5, 6, 3],
    run: (x) => upfirdn2d(x, RESAMPLE_FILTER, { up: 2, pad: [2, 1, 2, 1], gain: 4 }),
  },
  {
    name: 'downsample (down 2), odd size, batch 3',
    input: [3, 7, 9, 2],
    run: (x) => upfirdn2d(x, RESAMPLE_FILTER, { down: 2, pad: [1, 1, 1, 1] }),
  },
  {
    name: 'FIR after a transposed conv: negative padding (crop)',
    input: [2, 11, 9, 5],
    run: (x) => firFilter(x, RESAMPLE_FILTER, [-1, 0, 0, -1] as Padding4, 4),
  },
  {
    name: 'FIR before a down-conv: skewed padding, not flipped',
    input: [2, 6, 5, 1],
    run: (x) => firFilter(x, [1, 2, 1], [2, 1, 0, 3] as Padding4, 1, false),
  },
  {
    name: 'up 2 and down 2 at once',
    input: [1, 4, 5, 2],
    run: (x) => upfirdn2d(x, RESAMPLE_FILTER, { up: 2, down: 2, pad: [1, 2, 2, 1], gain: 2 }),
  },
];

const available = await backendAvailable('webgpu');

describe.skipIf(!available)('upfirdn2d program on webgpu', () => {
  it.each(CASES)('$name: values and input gradient match the composite on cpu', async (c) => {
    expect(tf.getBackend()).toBe('webgpu');
    const x = hostRandom(c.input, 3);
    const valueAndGrad = async () => {
      const y = c.run(fromHost(x) as tf.Tensor4D);
      const r = fromHost(hostRandom(y.shape, 4));
      const g = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(c.run(xi as tf.Tensor4D), r)))(fromHost(x));
      return [await toHost(y), await toHost(g)];
    };
    const [y, g] = await valueAndGrad();
    const [yRef, gRef] = await onCpu(valueAndGrad);
    expect(relativeError(y, yRef)).toBeLessThan(1e-5);
    expect(relativeError(g, gRef)).toBeLessThan(1e-5);
  });

  it('second order: the gradient of |d f / d x|^2 in x, through the FIR gradient, matches cpu', async () => {
    const x = hostRandom([2, 6, 7, 3], 9);
    const r = hostRandom([2, 12, 14, 3], 10);
    const f = (xi: tf.Tensor) =>
      tf.sum(
        tf.mul(
          tf.softplus(upfirdn2d(xi as tf.Tensor4D, RESAMPLE_FILTER, { up: 2, pad: [2, 1, 2, 1], gain: 4 })),
          fromHost(r),
        ),
      );
    const penaltyGrad = async () =>
      toHost(tf.grad((xi: tf.Tensor) => tf.sum(tf.square(tf.grad(f)(xi))))(fromHost(x)));
    const ours = await penaltyGrad();
    const reference = await onCpu(penaltyGrad);
    expect(relativeError(ours, reference)).toBeLessThan(1e-4);
  });

  it('runs as one program, forward and backward', async () => {
    const x = fromHost(hostRandom([1, 6, 6, 2], 5)) as tf.Tensor4D;
    const run = (xi: tf.Tensor) =>
      tf.sum(upfirdn2d(xi as tf.Tensor4D, RESAMPLE_FILTER, { down: 2, pad: [1, 1, 1, 1] }));
    const info = await tf.profile(() => tf.grad(run)(x));
    expect(info.kernels.filter((k) => k.name === 'FacestyleUpFirDn2D')).toHaveLength(2);
    expect(info.kernelNames).not.toContain('DepthwiseConv2dNative');
    expect(info.kernelNames).not.toContain('PadV2');
    tf.dispose(x);
  });

  it('rejects non-float input', () => {
    const x = tf.zeros([1, 4, 4, 1], 'int32') as tf.Tensor4D;
    expect(() => firFilter(x, RESAMPLE_FILTER, [1, 1, 1, 1])).toThrow(/float32/);
    x.dispose();
  });
});
