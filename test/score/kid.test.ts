// The KID estimator itself, on synthetic feature vectors: it must equal the textbook unbiased
// MMD^2 with the cubic kernel, be near zero for one distribution and large for two.
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { NumpyRandomState } from '../../src/model/seeds.ts';
import { type FeatureMatrix, kernelInceptionDistance, kidSubsetSize } from '../../src/pipelines/score/kid.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

function gaussianFeatures(count: number, dims: number, seed: number, shift = 0, scale = 1): FeatureMatrix {
  const rng = new NumpyRandomState(seed);
  const values = new Float32Array(count * dims);
  for (let i = 0; i < values.length; i++) values[i] = shift + scale * rng.gauss();
  return { count, dims, values };
}

/** The unbiased MMD^2 of Gretton et al. with k(x, y) = (x.y/d + 1)^3, written out in full. */
function bruteForceMmd(x: FeatureMatrix, y: FeatureMatrix): number {
  const k = (a: FeatureMatrix, i: number, b: FeatureMatrix, j: number) => {
    let dot = 0;
    for (let c = 0; c < a.dims; c++) dot += a.values[i * a.dims + c] * b.values[j * b.dims + c];
    return (dot / a.dims + 1) ** 3;
  };
  const m = x.count;
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i !== j) {
        xx += k(x, i, x, j);
        yy += k(y, i, y, j);
      }
      xy += k(x, i, y, j);
    }
  }
  return xx / (m * (m - 1)) + yy / (m * (m - 1)) - (2 * xy) / (m * m);
}

describe('kernelInceptionDistance', () => {
  it('equals the unbiased MMD^2 with the cubic kernel when the subset is the whole set', () => {
    const real = gaussianFeatures(20, 7, 1);
    const fake = gaussianFeatures(20, 7, 2, 0.3, 1.2);
    const result = kernelInceptionDistance(real, fake, { subsetSize: 20, numSubsets: 3 });
    expect(result.kid).toBeCloseTo(bruteForceMmd(fake, real), 4);
    expect(result.kidStd).toBeCloseTo(0, 8); // every subset is the whole set
    expect(result.subsetSize).toBe(20);
  });

  it('is near zero for two samples of one distribution and far from it for two distributions', () => {
    const a = gaussianFeatures(200, 16, 3);
    const b = gaussianFeatures(200, 16, 4);
    const shifted = gaussianFeatures(200, 16, 5, 0.5);
    const same = kernelInceptionDistance(a, b);
    const different = kernelInceptionDistance(a, shifted);
    expect(Math.abs(same.kid)).toBeLessThan(3 * same.kidStd);
    expect(different.kid).toBeGreaterThan(5 * different.kidStd);
    expect(different.kid).toBeGreaterThan(20 * Math.abs(same.kid));
  });

  it('gives the same score for the same seed and a slightly different one for another seed', () => {
    const a = gaussianFeatures(60, 8, 6);
    const b = gaussianFeatures(60, 8, 7, 0.2);
    const first = kernelInceptionDistance(a, b, { seed: 11 });
    expect(kernelInceptionDistance(a, b, { seed: 11 })).toEqual(first);
    const other = kernelInceptionDistance(a, b, { seed: 12 });
    expect(other.kid).not.toBe(first.kid);
    expect(Math.abs(other.kid - first.kid)).toBeLessThan(first.kidStd);
  });

  it('uses the official subset size for large sets and half the smaller side for small ones', () => {
    expect(kidSubsetSize(50_000, 50_000, 1000)).toBe(1000);
    expect(kidSubsetSize(1000, 1000, 1000)).toBe(500);
    expect(kidSubsetSize(400, 64, 1000)).toBe(32);
    expect(kidSubsetSize(3, 3, 1000)).toBe(3);
  });

  it('refuses mismatched or too small feature sets', () => {
    expect(() => kernelInceptionDistance(gaussianFeatures(5, 4, 1), gaussianFeatures(5, 3, 2))).toThrow(
      /feature sizes differ/,
    );
    expect(() => kernelInceptionDistance(gaussianFeatures(1, 4, 1), gaussianFeatures(5, 4, 2))).toThrow(
      /at least 2 real/,
    );
  });
});
