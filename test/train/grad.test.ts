// The differentiable convolution: values and first-order gradients against tfjs's native conv2d
// on cpu (which has every gradient kernel), first and second order against central finite
// differences, on cpu and wasm (which has no Conv2DBackpropFilter kernel at all).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import type { SpatialPadding } from '../../src/model/ops/conv.ts';
import { nativeConvOps } from '../../src/model/ops/conv.ts';
import {
  conv2dBackpropFilterDifferentiable,
  conv2dBackpropInputDifferentiable,
  conv2dDifferentiable,
  differentiableConvOps,
} from '../../src/model/ops/grad/conv2d.ts';
import { tf } from '../../src/model/tf.ts';
import {
  directionalDerivative,
  dot,
  fromHost,
  type HostTensor,
  onCpu,
  randomHost,
  relativeError,
  TRAIN_BACKENDS,
  toHost,
} from './support.ts';

interface ConvCase {
  name: string;
  input: [number, number, number, number];
  kernel: [number, number, number, number];
  stride: 1 | 2;
  pad: SpatialPadding;
}

const CASES: ConvCase[] = [
  {
    name: '3x3 same',
    input: [2, 5, 6, 3],
    kernel: [3, 3, 3, 4],
    stride: 1,
    pad: [
      [1, 1],
      [1, 1],
    ],
  },
  {
    name: '3x3 stride 2, odd size',
    input: [2, 7, 6, 3],
    kernel: [3, 3, 3, 2],
    stride: 2,
    pad: [
      [1, 1],
      [1, 1],
    ],
  },
  {
    name: '3x3 stride 2, skewed pad',
    input: [1, 6, 7, 2],
    kernel: [3, 3, 2, 3],
    stride: 2,
    pad: [
      [0, 2],
      [1, 0],
    ],
  },
  {
    name: '1x1',
    input: [2, 4, 4, 5],
    kernel: [1, 1, 5, 3],
    stride: 1,
    pad: [
      [0, 0],
      [0, 0],
    ],
  },
  {
    name: '1x1 stride 2',
    input: [2, 5, 4, 3],
    kernel: [1, 1, 3, 2],
    stride: 2,
    pad: [
      [0, 0],
      [0, 0],
    ],
  },
  {
    name: '4x4 stride 2',
    input: [1, 8, 8, 2],
    kernel: [4, 4, 2, 2],
    stride: 2,
    pad: [
      [1, 2],
      [2, 1],
    ],
  },
  {
    name: '2x3 valid',
    input: [2, 5, 6, 2],
    kernel: [2, 3, 2, 3],
    stride: 1,
    pad: [
      [0, 0],
      [0, 0],
    ],
  },
  {
    name: '3x3 pad larger than kernel',
    input: [1, 4, 4, 2],
    kernel: [3, 3, 2, 2],
    stride: 1,
    pad: [
      [3, 0],
      [0, 3],
    ],
  },
];

function nativePad(
  pad: SpatialPadding,
): [[number, number], [number, number], [number, number], [number, number]] {
  return [[0, 0], pad[0], pad[1], [0, 0]];
}

/** sum(r * conv(x, w)) and its gradients in x and w, with conv either ours or tfjs's. */
function linearLossGrads(c: ConvCase, x: HostTensor, w: HostTensor, r: HostTensor, native: boolean) {
  const loss = (xt: tf.Tensor, wt: tf.Tensor) => {
    const y = native
      ? tf.conv2d(xt as tf.Tensor4D, wt as tf.Tensor4D, c.stride, nativePad(c.pad))
      : conv2dDifferentiable(xt as tf.Tensor4D, wt as tf.Tensor4D, c.stride, c.pad);
    return tf.sum(tf.mul(y, fromHost(r)));
  };
  const { value, grads } = tf.valueAndGrads(loss)([fromHost(x), fromHost(w)]);
  return { value, dx: grads[0], dw: grads[1] };
}

function outputShape(c: ConvCase): number[] {
  const [n, h, w] = c.input;
  const [kh, kw, , o] = c.kernel;
  const out = (size: number, p: [number, number], k: number) =>
    Math.floor((size + p[0] + p[1] - k) / c.stride) + 1;
  return [n, out(h, c.pad[0], kh), out(w, c.pad[1], kw), o];
}

/** Two convolutions with smooth activations, so that second derivatives are not zero (softplus: tanh
 * reads its saved output, which tfjs cannot differentiate again; see activations.ts). */
function twoLayer(x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor, r: tf.Tensor): tf.Scalar {
  const h = tf.softplus(
    conv2dDifferentiable(x as tf.Tensor4D, w1 as tf.Tensor4D, 2, [
      [1, 1],
      [1, 1],
    ]),
  );
  const y = conv2dDifferentiable(h as tf.Tensor4D, w2 as tf.Tensor4D, 1, [
    [1, 1],
    [1, 1],
  ]);
  return tf.sum(tf.mul(tf.softplus(y), r));
}

function twoLayerNative(x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor, r: tf.Tensor): tf.Scalar {
  const h = tf.softplus(
    tf.conv2d(
      x as tf.Tensor4D,
      w1 as tf.Tensor4D,
      2,
      nativePad([
        [1, 1],
        [1, 1],
      ]),
    ),
  );
  const y = tf.conv2d(
    h as tf.Tensor4D,
    w2 as tf.Tensor4D,
    1,
    nativePad([
      [1, 1],
      [1, 1],
    ]),
  );
  return tf.sum(tf.mul(tf.softplus(y), r));
}

/** R1-shaped quantity: |d f / d x|^2, a function of the weights through the gradient. */
function gradientPenalty(f: typeof twoLayer) {
  return (x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor, r: tf.Tensor): tf.Scalar => {
    const gx = tf.grad((xi: tf.Tensor) => f(xi, w1, w2, r))(x);
    return tf.sum(tf.square(gx));
  };
}

for (const backend of TRAIN_BACKENDS) {
  describe(`differentiable conv2d on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });
    afterAll(() => {
      tf.disposeVariables();
    });

    it('matches native conv2d and its gradients on cpu, for every stride/padding/kernel case', async () => {
      for (const [i, c] of CASES.entries()) {
        const x = randomHost(c.input, 10 + i);
        const w = randomHost(c.kernel, 20 + i);
        const r = randomHost(outputShape(c), 30 + i);
        const ours = linearLossGrads(c, x, w, r, false);
        const y = await toHost(
          conv2dDifferentiable(fromHost(x) as tf.Tensor4D, fromHost(w) as tf.Tensor4D, c.stride, c.pad),
        );
        const oursHost = { dx: await toHost(ours.dx), dw: await toHost(ours.dw) };
        const reference = await onCpu(async () => {
          const g = linearLossGrads(c, x, w, r, true);
          const yRef = tf.conv2d(
            fromHost(x) as tf.Tensor4D,
            fromHost(w) as tf.Tensor4D,
            c.stride,
            nativePad(c.pad),
          );
          return { y: await toHost(yRef), dx: await toHost(g.dx), dw: await toHost(g.dw) };
        });
        expect(relativeError(y, reference.y), `${c.name}: value`).toBeLessThan(1e-5);
        expect(relativeError(oursHost.dx, reference.dx), `${c.name}: d/dx`).toBeLessThan(1e-5);
        expect(relativeError(oursHost.dw, reference.dw), `${c.name}: d/dw`).toBeLessThan(1e-5);
      }
    });

    it('first-order gradients match central finite differences', async () => {
      const x = randomHost([2, 6, 6, 2], 1);
      const w1 = randomHost([3, 3, 2, 3], 2, 0.5);
      const w2 = randomHost([3, 3, 3, 2], 3, 0.5);
      const r = randomHost([2, 3, 3, 2], 4);
      const grads = tf.grads(twoLayer)([x, w1, w2, r].map(fromHost)).slice(0, 3);
      for (const [k, g] of grads.entries()) {
        const args = [x, w1, w2];
        const v = randomHost(args[k].shape, 50 + k);
        const zeros: HostTensor[] = args.map((a) => ({
          shape: a.shape,
          data: new Float32Array(a.data.length),
        }));
        zeros[k] = v;
        const fd = await directionalDerivative(
          (a, b, c) => twoLayer(a, b, c, fromHost(r)),
          args,
          zeros,
          1e-2,
        );
        const analytic = dot(await toHost(g), v);
        expect(Math.abs(analytic - fd) / Math.abs(fd), `argument ${k}`).toBeLessThan(1e-2);
      }
    });

    it('second-order gradients (of |df/dx|^2 in the weights) match finite differences and native cpu', async () => {
      const x = randomHost([2, 6, 6, 2], 5);
      const w1 = randomHost([3, 3, 2, 3], 6, 0.5);
      const w2 = randomHost([3, 3, 3, 2], 7, 0.5);
      const r = randomHost([2, 3, 3, 2], 8);
      const penalty = gradientPenalty(twoLayer);
      const [g1, g2] = tf.grads((a: tf.Tensor, b: tf.Tensor) => penalty(fromHost(x), a, b, fromHost(r)))([
        fromHost(w1),
        fromHost(w2),
      ]);
      const ours = [await toHost(g1), await toHost(g2)];
      // Along a random direction in both kernels at once.
      const v = [randomHost(w1.shape, 60), randomHost(w2.shape, 61)];
      const fd = await directionalDerivative(
        (a, b) => penalty(fromHost(x), a, b, fromHost(r)),
        [w1, w2],
        v,
        1e-2,
      );
      const analytic = dot(ours[0], v[0]) + dot(ours[1], v[1]);
      expect(Math.abs(analytic - fd) / Math.abs(fd)).toBeLessThan(1e-2);

      const nativePenalty = gradientPenalty(twoLayerNative);
      const reference = await onCpu(async () => {
        const gs = tf.grads((a: tf.Tensor, b: tf.Tensor) => nativePenalty(fromHost(x), a, b, fromHost(r)))([
          fromHost(w1),
          fromHost(w2),
        ]);
        return Promise.all(gs.map(toHost));
      });
      expect(relativeError(ours[0], reference[0])).toBeLessThan(1e-4);
      expect(relativeError(ours[1], reference[1])).toBeLessThan(1e-4);
    });

    it('differentiates its own adjoint and filter-gradient kernels (third-order paths)', async () => {
      const c = CASES[2];
      const x = randomHost(c.input, 70);
      const w = randomHost(c.kernel, 71);
      const dy = randomHost(outputShape(c), 72);
      const gw = randomHost(c.kernel, 73);
      const gx = randomHost(c.input, 74);
      const size: [number, number] = [c.input[1], c.input[2]];
      const kernelSize: [number, number] = [c.kernel[0], c.kernel[1]];
      // Both are bilinear: a central difference along (v_a, v_b) is exact up to rounding.
      const filterLoss = (a: tf.Tensor, b: tf.Tensor): tf.Scalar =>
        tf.sum(
          tf.mul(
            conv2dBackpropFilterDifferentiable(
              a as tf.Tensor4D,
              b as tf.Tensor4D,
              c.stride,
              c.pad,
              kernelSize,
            ),
            fromHost(gw),
          ),
        );
      const inputLoss = (a: tf.Tensor, b: tf.Tensor): tf.Scalar =>
        tf.sum(
          tf.mul(
            conv2dBackpropInputDifferentiable(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad, size),
            fromHost(gx),
          ),
        );
      for (const [name, loss, args] of [
        ['filter gradient', filterLoss, [x, dy]],
        ['input gradient', inputLoss, [dy, w]],
      ] as const) {
        const grads = tf.grads(loss)(args.map(fromHost));
        const v = args.map((a, k) => randomHost(a.shape, 80 + k));
        const analytic = dot(await toHost(grads[0]), v[0]) + dot(await toHost(grads[1]), v[1]);
        const fd = await directionalDerivative(loss, [...args], v, 1e-2);
        expect(Math.abs(analytic - fd) / Math.abs(fd), name).toBeLessThan(1e-3);
      }
      // The filter gradient kernel is the adjoint pairing: <dw(x, dy), gw> = <dy, conv(x, gw)>.
      const pairing = dot(
        await toHost(
          conv2dBackpropFilterDifferentiable(
            fromHost(x) as tf.Tensor4D,
            fromHost(dy) as tf.Tensor4D,
            c.stride,
            c.pad,
            kernelSize,
          ),
        ),
        gw,
      );
      const direct = dot(
        dy,
        await toHost(
          conv2dDifferentiable(fromHost(x) as tf.Tensor4D, fromHost(gw) as tf.Tensor4D, c.stride, c.pad),
        ),
      );
      expect(Math.abs(pairing - direct) / Math.abs(direct)).toBeLessThan(1e-5);
    });

    it('transposed convolution matches the native ConvOps, values and gradients', async () => {
      const x = randomHost([2, 3, 4, 3], 90);
      const w = randomHost([3, 3, 3, 2], 91);
      const r = randomHost([2, 7, 9, 2], 92);
      const run = (ops: typeof nativeConvOps) => {
        const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(ops.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, 2), fromHost(r))),
        )([fromHost(x), fromHost(w)]);
        return Promise.all([value, ...grads].map(toHost));
      };
      const ours = await run(differentiableConvOps);
      const reference = await onCpu(() => run(nativeConvOps));
      for (let k = 0; k < 3; k++) expect(relativeError(ours[k], reference[k])).toBeLessThan(1e-5);
    });

    it('computes no filter gradient when only the input gradient is asked for', async () => {
      const x = fromHost(randomHost([1, 6, 6, 2], 100));
      const w = tf.variable(fromHost(randomHost([3, 3, 2, 2], 101)));
      const profile = await tf.profile(() => {
        const g = tf.grad((xi: tf.Tensor) =>
          tf.sum(
            tf.square(
              conv2dDifferentiable(xi as tf.Tensor4D, w as tf.Variable<tf.Rank.R4>, 2, [
                [1, 1],
                [1, 1],
              ]),
            ),
          ),
        )(x);
        g.dataSync();
      });
      const kernels = profile.kernels.map((k) => k.name);
      expect(kernels).toContain('FacestyleConv2DBackpropInput');
      expect(kernels).not.toContain('FacestyleConv2DBackpropFilter');
    });

    it('rejects bad strides, padding and channel counts', () => {
      const x = tf.zeros([1, 4, 4, 2]) as tf.Tensor4D;
      const w = tf.zeros([3, 3, 2, 1]) as tf.Tensor4D;
      expect(() =>
        conv2dDifferentiable(x, w, 3 as 1, [
          [1, 1],
          [1, 1],
        ]),
      ).toThrow(/stride/);
      expect(() =>
        conv2dDifferentiable(x, w, 1, [
          [-1, 1],
          [1, 1],
        ]),
      ).toThrow(/padding/);
      expect(() =>
        conv2dDifferentiable(x, tf.zeros([3, 3, 3, 1]) as tf.Tensor4D, 1, [
          [1, 1],
          [1, 1],
        ]),
      ).toThrow(/HWIO/);
      expect(() =>
        conv2dDifferentiable(tf.zeros([1, 1, 1, 2]) as tf.Tensor4D, w, 1, [
          [0, 0],
          [0, 0],
        ]),
      ).toThrow(/larger/);
      expect(() =>
        conv2dBackpropInputDifferentiable(
          tf.zeros([1, 3, 3, 1]) as tf.Tensor4D,
          w,
          1,
          [
            [1, 1],
            [1, 1],
          ],
          [4, 4],
        ),
      ).toThrow(/not the output/);
    });
  });
}
