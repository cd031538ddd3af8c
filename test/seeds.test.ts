import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.ts';
import {
  NumpyRandomState,
  parseSeeds,
  randomSeed,
  variationZ,
  zFromSeed,
  zFromSeed64,
} from '../src/model/seeds.ts';

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/numpy_randn_seeds.json', import.meta.url), 'utf8'),
) as {
  cases: Array<{
    seed: number;
    z_dim: number;
    z: number[] | { first8: number[]; sum: number; sumsq: number };
  }>;
};

const close = (a: number, b: number, rel = 1e-15) => Math.abs(a - b) <= Math.abs(b) * rel + 1e-300;

describe('seed -> z as numpy.random.RandomState(seed).randn(1, z_dim)', () => {
  it('has reference cases', () => {
    expect(fixture.cases.length).toBeGreaterThan(0);
  });
  for (const c of fixture.cases) {
    it(`seed ${c.seed}, z_dim ${c.z_dim}`, () => {
      const z = zFromSeed64(c.seed, c.z_dim);
      expect(z.length).toBe(c.z_dim);
      // Long vectors are given as their first 8 values plus sum and sum of squares.
      const head = Array.isArray(c.z) ? c.z : c.z.first8;
      for (let i = 0; i < head.length; i++)
        expect(close(z[i], head[i]), `z[${i}] = ${z[i]}, expected ${head[i]}`).toBe(true);
      if (!Array.isArray(c.z)) {
        expect(
          close(
            z.reduce((a, b) => a + b, 0),
            c.z.sum,
            1e-12,
          ),
        ).toBe(true);
        expect(
          close(
            z.reduce((a, b) => a + b * b, 0),
            c.z.sumsq,
            1e-12,
          ),
        ).toBe(true);
      }
      expect(zFromSeed(c.seed, c.z_dim)[0]).toBe(Math.fround(head[0]));
    });
  }
  it('draws uniform doubles as numpy random_sample (seed 0 first value 0.5488135039273248)', () => {
    expect(new NumpyRandomState(0).randomSample()).toBe(0.5488135039273248);
  });
  it('rejects seeds outside 0..2^32-1', () => {
    expect(() => zFromSeed(-1, 4)).toThrow(/seed must be an integer/);
    expect(() => zFromSeed(2 ** 32, 4)).toThrow(/seed must be an integer/);
    expect(() => zFromSeed(1.5, 4)).toThrow(/seed must be an integer/);
  });
});

describe('parseSeeds', () => {
  it('reads lists and ranges in order without duplicates', () => {
    expect(parseSeeds('1-4,42, 2,100-101')).toEqual([1, 2, 3, 4, 42, 100, 101]);
  });
  it('refuses junk, backwards ranges and too many seeds with a clear message', () => {
    expect(() => parseSeeds('1-x')).toThrow(/"1-x" is not a number or a range/);
    expect(() => parseSeeds('9-3')).toThrow(/runs backwards/);
    expect(() => parseSeeds('0-5000', 100)).toThrow(/at most 100/);
    expect(() => parseSeeds('')).toThrow(/not a number/);
    expect(() => parseSeeds('1,,2')).toThrow(UserError);
    expect(() => parseSeeds('-3')).toThrow(/"-3" is not a number/);
    expect(() => parseSeeds('4294967296')).toThrow(/seed must be an integer from 0 to 4294967295/);
    expect(() => parseSeeds('0-4294967295')).toThrow(/at most 1024/);
  });
  it('counts overlapping ranges once against the limit', () => {
    expect(parseSeeds('1-4,2-3,4', 4)).toEqual([1, 2, 3, 4]);
    expect(() => parseSeeds('1-4,5', 4)).toThrow(/at most 4/);
    expect(parseSeeds('4294967295')).toEqual([4294967295]);
  });
});

describe('randomSeed', () => {
  it('gives integer seeds the official tools accept', () => {
    for (let i = 0; i < 100; i++) {
      const seed = randomSeed();
      expect(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32).toBe(true);
    }
    expect(() => zFromSeed(randomSeed(), 2)).not.toThrow();
  });
});

describe('variationZ', () => {
  const cosine = (a: Float32Array, b: Float32Array) => {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < a.length; i++) {
      dot += a[i] * b[i];
      na += a[i] ** 2;
      nb += b[i] ** 2;
    }
    return dot / Math.sqrt(na * nb);
  };

  it('is the face itself at strength 0 and moves away from it as the strength grows', () => {
    const face = zFromSeed(42, 512);
    expect(variationZ({ of: 42, strength: 0 }, 7, 512)).toEqual(face);
    const near = cosine(face, variationZ({ of: 42, strength: 0.3 }, 7, 512));
    const far = cosine(face, variationZ({ of: 42, strength: 1 }, 7, 512));
    expect(near).toBeGreaterThan(0.9);
    expect(far).toBeGreaterThan(0.6);
    expect(far).toBeLessThan(near);
    // Another face entirely is about orthogonal in 512 dimensions.
    expect(Math.abs(cosine(face, zFromSeed(43, 512)))).toBeLessThan(0.2);
  });

  it('keeps the length of a typical z, so the mapping network sees a normal latent', () => {
    const z = variationZ({ of: 1, strength: 0.6 }, 2, 512);
    const length = Math.sqrt(z.reduce((sum, v) => sum + v * v, 0));
    expect(length).toBeGreaterThan(Math.sqrt(512) * 0.9);
    expect(length).toBeLessThan(Math.sqrt(512) * 1.1);
  });

  it('gives different variations for different noise seeds, the same for the same one', () => {
    const a = variationZ({ of: 5, strength: 0.6 }, 1, 64);
    expect(variationZ({ of: 5, strength: 0.6 }, 1, 64)).toEqual(a);
    expect(variationZ({ of: 5, strength: 0.6 }, 2, 64)).not.toEqual(a);
  });
});
