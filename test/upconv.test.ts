// The 2x-upsampling convolution (conv2dResample with up = 2) in each of its forms against the
// official definition computed the slow way (zero insertion + FIR via upfirdn2d, then a plain
// convolution): the four-phase form (cpu, wasm), the native transposed conv (webgpu and others),
// and the polyphase form kept for benchmarks; values and gradients; the cached phase kernels.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, readTensor } from '../src/model/backend.ts';
import { conv2d, conv2dResample, derivedFromWeight, flipKernel } from '../src/model/ops/conv.ts';
import { RESAMPLE_FILTER, upfirdn2d } from '../src/model/ops/upfirdn2d.ts';
import { tf } from '../src/model/tf.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

afterEach(() => {
  delete process.env.FACESTYLE_UP_CONV;
});

/** conv2d_resample's reference path for up = 2, padding 1 (what the official code does without its fast path). */
function reference(x: tf.Tensor4D, w: tf.Tensor4D, flipWeight: boolean): tf.Tensor4D {
  // p0 = 1 + floor((4 + 2 - 1) / 2) = 3, p1 = 1 + floor((4 - 2) / 2) = 2
  const up = upfirdn2d(x, RESAMPLE_FILTER, { up: 2, pad: [3, 2, 3, 2], gain: 4 });
  return conv2d(up, flipWeight ? w : flipKernel(w));
}

type Shape4 = [number, number, number, number];

async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  expect(a.shape).toEqual(b.shape);
  const [va, vb] = [await readTensor(a), await readTensor(b)];
  return Math.max(...va.map((v, i) => Math.abs(v - vb[i])));
}

const SHAPES: Array<[Shape4, Shape4]> = [
  [
    [1, 3, 5, 2],
    [3, 3, 2, 3],
  ],
  [
    [2, 4, 4, 3],
    [3, 3, 3, 1],
  ],
];

describe('conv2dResample up = 2', () => {
  for (const [xs, ws] of SHAPES) {
    for (const flipWeight of [false, true]) {
      it(`x [${xs}], w [${ws}], flipWeight ${flipWeight}: every form equals the definition`, async () => {
        const x = tf.randomNormal(xs, 0, 1, 'float32', 1) as tf.Tensor4D;
        const w = tf.randomNormal(ws, 0, 1, 'float32', 2) as tf.Tensor4D;
        const expected = reference(x, w, flipWeight);
        expect(expected.shape).toEqual([xs[0], 2 * xs[1], 2 * xs[2], ws[3]]);
        for (const method of ['transposed', 'polyphase']) {
          process.env.FACESTYLE_UP_CONV = method;
          const got = conv2dResample(x, w, { up: 2, padding: 1, flipWeight });
          expect(await maxDiff(got, expected), method).toBeLessThan(1e-5);
        }
      });
    }
  }

  it('the four-phase form has the gradients of the definition, in x and w', async () => {
    const x = tf.randomNormal([2, 3, 4, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 2, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const r = tf.randomNormal([2, 6, 8, 3], 0, 1, 'float32', 5);
    const loss = (f: (a: tf.Tensor4D, b: tf.Tensor4D) => tf.Tensor4D) => (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D), r));
    const ours = tf.grads(loss((a, b) => conv2dResample(a, b, { up: 2, padding: 1, flipWeight: false })))([
      x,
      w,
    ]);
    const theirs = tf.grads(loss((a, b) => reference(a, b, false)))([x, w]);
    for (let i = 0; i < 2; i++) expect(await maxDiff(ours[i], theirs[i])).toBeLessThan(1e-4);
  });

  it('builds the phase kernels once per weight value: reused, rebuilt after assign, freed with the weight', async () => {
    const w = tf.variable(tf.randomNormal([3, 3, 2, 2], 0, 1, 'float32', 6));
    const build = () => [tf.mul(w, 2)];
    const first = derivedFromWeight(w, 'test', build);
    expect(derivedFromWeight(w, 'test', build)[0]).toBe(first[0]);
    w.assign(tf.zerosLike(w));
    const second = derivedFromWeight(w, 'test', build);
    expect(second[0]).not.toBe(first[0]);
    expect(first[0].isDisposed).toBe(true);
    expect(Array.from(await readTensor(second[0])).every((v) => v === 0)).toBe(true);
    // Under a gradient tape the derived tensors must stay connected to the weight: no cache.
    const g = tf.grad((v: tf.Tensor) => tf.sum(derivedFromWeight(v, 'test', () => [tf.mul(v, 2)])[0]))(w);
    expect(Array.from(await readTensor(g)).every((v) => v === 2)).toBe(true);
    w.dispose();
    const other = tf.scalar(1);
    derivedFromWeight(other, 'test', () => [tf.add(other, 1)]);
    expect(second[0].isDisposed).toBe(true);
  });

  it('rejects an unknown FACESTYLE_UP_CONV', () => {
    process.env.FACESTYLE_UP_CONV = 'fast';
    const x = tf.zeros([1, 2, 2, 1]) as tf.Tensor4D;
    const w = tf.zeros([3, 3, 1, 1]) as tf.Tensor4D;
    expect(() => conv2dResample(x, w, { up: 2, padding: 1 })).toThrow(/FACESTYLE_UP_CONV/);
  });
});
