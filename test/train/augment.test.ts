// ADA: the augmentation pipeline's transformations, its differentiability on cpu and wasm, and the
// controller that steers p.
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { NumpyRandomState } from '../../src/model/seeds.ts';
import { tf } from '../../src/model/tf.ts';
import {
  AdaptiveAugment,
  AUGMENT_PRESETS,
  AugmentPipe,
  applyAugment,
  reflectPad,
  resampleMatrix,
  type SampleAugment,
  sampleAugment,
} from '../../src/model/train/augment.ts';
import {
  directionalDerivative,
  dot,
  fromHost,
  randomHost,
  relativeError,
  TRAIN_BACKENDS,
  toHost,
} from './support.ts';

const IDENTITY_COLOR = Float64Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);

function params(overrides: Partial<SampleAugment> = {}): SampleAugment {
  return {
    xflip: false,
    rotate90: 0,
    tx: 0,
    ty: 0,
    sx: 1,
    sy: 1,
    fx: 0,
    fy: 0,
    color: IDENTITY_COLOR,
    ...overrides,
  };
}

/** A 1-channel image whose pixel (r, c) holds 10 r + c. */
function ramp(h: number, w: number): tf.Tensor4D {
  return tf.tensor4d(
    Array.from({ length: h * w }, (_, k) => 10 * Math.floor(k / w) + (k % w)),
    [1, h, w, 1],
  );
}

async function rows(t: tf.Tensor4D): Promise<number[][]> {
  const [, h, w] = t.shape;
  const data = Array.from(await t.data());
  return Array.from({ length: h }, (_, r) =>
    data.slice(r * w, (r + 1) * w).map((v) => Math.round(v * 1e4) / 1e4),
  );
}

describe('augmentation parameters', () => {
  it('are reproducible from a seed and independent of p for the draws', () => {
    const size = { height: 16, width: 16 };
    const a = sampleAugment(AUGMENT_PRESETS.bgc, 0.7, 8, size, new NumpyRandomState(3));
    const b = sampleAugment(AUGMENT_PRESETS.bgc, 0.7, 8, size, new NumpyRandomState(3));
    expect(a).toEqual(b);
    const c = sampleAugment(AUGMENT_PRESETS.bgc, 0.7, 8, size, new NumpyRandomState(4));
    expect(c).not.toEqual(a);
  });

  it('apply each operation with probability multiplier * p', () => {
    const n = 4000;
    const draws = sampleAugment(
      AUGMENT_PRESETS.bgc,
      0.5,
      n,
      { height: 32, width: 32 },
      new NumpyRandomState(1),
    );
    const fraction = (pred: (s: SampleAugment) => boolean) => draws.filter(pred).length / n;
    // x-flip: applied with probability p, and then a fair coin decides whether it flips.
    expect(fraction((s) => s.xflip)).toBeCloseTo(0.25, 1);
    // rotate90: applied with probability p, then a uniform quarter turn (0 included).
    expect(fraction((s) => s.rotate90 !== 0)).toBeCloseTo(0.5 * 0.75, 1);
    expect(fraction((s) => s.sx !== s.sy)).toBeCloseTo(0.5, 1);
    for (const s of draws) {
      expect(Math.abs(s.tx)).toBeLessThanOrEqual(4);
      expect(Number.isInteger(s.tx) && Number.isInteger(s.ty)).toBe(true);
    }
    const none = sampleAugment(
      AUGMENT_PRESETS.bgc,
      0,
      100,
      { height: 32, width: 32 },
      new NumpyRandomState(1),
    );
    expect(
      none.every((s) => s.color.every((v, k) => v === IDENTITY_COLOR[k]) && !s.xflip && s.sx === 1),
    ).toBe(true);
  });
});

for (const backend of TRAIN_BACKENDS) {
  describe(`augmentation on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    it('p = 0 returns the images untouched', async () => {
      const pipe = new AugmentPipe(AUGMENT_PRESETS.bgc, 1);
      const x = tf.randomNormal([4, 8, 8, 3]) as tf.Tensor4D;
      expect(pipe.apply(x)).toBe(x);
      const identity = applyAugment(
        x,
        Array.from({ length: 4 }, () => params()),
      );
      expect(relativeError(await toHost(identity), await toHost(x))).toBe(0);
    });

    it('flips, rotates (counter-clockwise) and translates with reflect or zero padding', async () => {
      const x = ramp(3, 3);
      expect(await rows(applyAugment(x, [params({ xflip: true })]))).toEqual([
        [2, 1, 0],
        [12, 11, 10],
        [22, 21, 20],
      ]);
      expect(await rows(applyAugment(x, [params({ rotate90: 1 })]))).toEqual([
        [2, 12, 22],
        [1, 11, 21],
        [0, 10, 20],
      ]);
      expect(await rows(applyAugment(x, [params({ rotate90: 2 })]))).toEqual([
        [22, 21, 20],
        [12, 11, 10],
        [2, 1, 0],
      ]);
      expect(await rows(applyAugment(x, [params({ rotate90: 3 })]))).toEqual([
        [20, 10, 0],
        [21, 11, 1],
        [22, 12, 2],
      ]);
      // Content moves right by 1 and up by 1; the uncovered column/row reflects (edge not repeated).
      expect(await rows(applyAugment(x, [params({ tx: 1, ty: -1 })]))).toEqual([
        [11, 10, 11],
        [21, 20, 21],
        [11, 10, 11],
      ]);
      expect(await rows(applyAugment(x, [params({ tx: 1, ty: -1 })], 'zero'))).toEqual([
        [0, 10, 11],
        [0, 20, 21],
        [0, 0, 0],
      ]);
      // Per sample: the second image alone is flipped.
      const pair = tf.concat([x, x]);
      const out = applyAugment(pair, [params(), params({ xflip: true })]);
      expect(await rows(tf.slice(out, [0], [1]))).toEqual(await rows(x));
      expect(await rows(tf.slice(out, [1], [1]))).toEqual(await rows(tf.reverse(x, 2)));
    });

    it('reflect padding equals tfjs mirrorPad and has the right (adjoint) gradient', async () => {
      const x = randomHost([1, 4, 5, 2], 7);
      const xt = fromHost(x) as tf.Tensor4D;
      const padded = await toHost(reflectPad(xt, 2));
      const mirror = await toHost(
        tf.mirrorPad(
          xt,
          [
            [0, 0],
            [2, 2],
            [2, 2],
            [0, 0],
          ],
          'reflect',
        ),
      );
      expect(relativeError(padded, mirror)).toBe(0);
      const r = randomHost(padded.shape, 8);
      const f = (t: tf.Tensor) =>
        tf.sum(tf.mul(reflectPad(t as tf.Tensor4D, 2), tf.tensor(r.data, r.shape))) as tf.Scalar;
      const g = await toHost(tf.grad(f)(xt));
      const v = randomHost(x.shape, 9);
      expect(dot(g, v)).toBeCloseTo(await directionalDerivative(f, [x], [v], 1), 3);
    });

    it('scales and shifts with resampling matrices whose rows sum to 1', async () => {
      expect(Array.from(resampleMatrix(4, 1, 0))).toEqual([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
      for (const [scale, shift] of [
        [0.6, 0.3],
        [1.7, -1.2],
        [0.3, 2],
      ]) {
        const m = resampleMatrix(6, scale, shift);
        for (let j = 0; j < 6; j++) {
          const sum = m.slice(j * 6, j * 6 + 6).reduce((a, b) => a + b, 0);
          expect(sum).toBeCloseTo(1, 6);
        }
      }
      // An integer shift through the matrices is the reflect-padded translation.
      const x = ramp(5, 5);
      const viaMatrix = await rows(applyAugment(x, [params({ fx: 1, fy: -2 })]));
      expect(viaMatrix).toEqual(await rows(applyAugment(x, [params({ tx: 1, ty: -2 })])));
      // A constant image stays constant under any scaling.
      const flat = tf.fill([1, 8, 8, 3], 0.25) as tf.Tensor4D;
      const scaled = await toHost(applyAugment(flat, [params({ sx: 0.7, sy: 1.4, fx: 0.5 })]));
      for (const v of scaled.data) expect(v).toBeCloseTo(0.25, 5);
    });

    it('colour transforms keep grey images grey, and hue/saturation keep the luma', async () => {
      const pipe = new AugmentPipe(AUGMENT_PRESETS.color, 11);
      pipe.p = 1;
      const grey = tf.tile(tf.randomUniform([6, 5, 5, 1], -1, 1, 'float32', 3), [1, 1, 1, 3]) as tf.Tensor4D;
      const out = pipe.apply(grey);
      const [r, g, b] = tf.split(out, 3, 3);
      expect(await tf.max(tf.abs(tf.sub(r, g))).data()).toSatisfy((d: Float32Array) => d[0] < 1e-5);
      expect(await tf.max(tf.abs(tf.sub(g, b))).data()).toSatisfy((d: Float32Array) => d[0] < 1e-5);
      expect(relativeError(await toHost(out), await toHost(grey))).toBeGreaterThan(0.01);

      const huePipe = new AugmentPipe(
        { ...AUGMENT_PRESETS.color, brightness: 0, contrast: 0, lumaflip: 0 },
        12,
      );
      huePipe.p = 1;
      const colourful = tf.randomUniform([6, 5, 5, 3], -1, 1, 'float32', 4) as tf.Tensor4D;
      const shifted = huePipe.apply(colourful);
      expect(relativeError(await toHost(shifted), await toHost(colourful))).toBeGreaterThan(0.01);
      const luma = (t: tf.Tensor) => toHost(tf.mean(t, 3));
      expect(relativeError(await luma(shifted), await luma(colourful))).toBeLessThan(1e-5);
    });

    it('p = 1 changes the images; gradients flow through every stage and match finite differences', async () => {
      const pipe = new AugmentPipe(AUGMENT_PRESETS.bgc, 5);
      pipe.p = 1;
      const x = randomHost([4, 8, 8, 3], 13);
      const xt = fromHost(x) as tf.Tensor4D;
      expect(relativeError(await toHost(pipe.apply(xt)), x)).toBeGreaterThan(0.05);
      const drawn = sampleAugment(
        AUGMENT_PRESETS.bgc,
        1,
        4,
        { height: 8, width: 8 },
        new NumpyRandomState(6),
      );
      expect(drawn.some((s) => s.rotate90 || s.xflip) && drawn.some((s) => s.sx !== 1)).toBe(true);
      const r = randomHost([4, 8, 8, 3], 14);
      const f = (t: tf.Tensor) =>
        tf.sum(
          tf.mul(tf.square(applyAugment(t as tf.Tensor4D, drawn)), tf.tensor(r.data, r.shape)),
        ) as tf.Scalar;
      const g = await toHost(tf.grad(f)(xt));
      expect(g.data.every(Number.isFinite)).toBe(true);
      expect(g.data.some((v) => v !== 0)).toBe(true);
      const v = randomHost(x.shape, 15);
      const fd = await directionalDerivative(f, [x], [v], 1e-2);
      expect(Math.abs(dot(g, v) - fd) / Math.abs(fd)).toBeLessThan(1e-3);
      // And a second time, as R1 through D(augment(x)) needs.
      const h = (t: tf.Tensor) => tf.sum(tf.square(tf.grad(f)(t))) as tf.Scalar;
      const gg = await toHost(tf.grad(h)(xt));
      expect(gg.data.every(Number.isFinite) && gg.data.some((value) => value !== 0)).toBe(true);
    });
  });
}

describe('adaptive augmentation controller', () => {
  it('raises p when D is over-confident on reals (r_t > 0.6) and lowers it when not', () => {
    const ada = new AdaptiveAugment({ kimg: 500, interval: 4 });
    const step = (32 * 4) / 500_000;
    for (let i = 0; i < 3; i++) expect(ada.update(0.9, 32)).toBe(0);
    expect(ada.update(0.9, 32)).toBeCloseTo(step, 12);
    expect(ada.lastRt).toBeCloseTo(0.9, 12);
    for (let i = 0; i < 8; i++) ada.update(0.8, 32);
    expect(ada.p).toBeCloseTo(3 * step, 12);
    for (let i = 0; i < 4; i++) ada.update(0.2, 32);
    expect(ada.p).toBeCloseTo(2 * step, 12);
  });

  it('averages the interval by images and stays within [0, 1]', () => {
    const ada = new AdaptiveAugment({ kimg: 0.001, interval: 2 });
    // (1 * 1 + 0.5 * 3) / 4 = 0.625 > 0.6: up, by 4 images / 1 image-per-unit, clamped to 1.
    ada.update(1, 1);
    expect(ada.update(0.5, 3)).toBe(1);
    ada.update(-1, 2);
    expect(ada.update(-1, 2)).toBe(0);
    expect(() => ada.update(Number.NaN, 2)).toThrow(RangeError);
    expect(() => new AdaptiveAugment({ initialP: 2 })).toThrow(RangeError);
  });

  it('resumes mid-interval from its state', () => {
    const a = new AdaptiveAugment();
    a.update(0.9, 8);
    a.update(0.9, 8);
    const b = new AdaptiveAugment();
    b.restore(a.state());
    for (const ada of [a, b]) {
      ada.update(0.3, 8);
      ada.update(0.9, 8);
    }
    expect(b.state()).toEqual(a.state());
    expect(a.p).toBeGreaterThan(0);
  });
});
