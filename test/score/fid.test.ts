// FID on features (optional output of facestyle score): the eigenvalue solver and the sample-space
// square-root term against cases with a known answer.
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { NumpyRandomState } from '../../src/model/seeds.ts';
import { frechetDistance, symmetricEigenvalues } from '../../src/pipelines/score/fid.ts';
import type { FeatureMatrix } from '../../src/pipelines/score/kid.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

function randomFeatures(count: number, dims: number, seed: number): FeatureMatrix {
  const rng = new NumpyRandomState(seed);
  return { count, dims, values: Float32Array.from({ length: count * dims }, () => rng.gauss()) };
}

const map = (f: FeatureMatrix, g: (v: number, i: number) => number): FeatureMatrix => ({
  ...f,
  values: Float32Array.from(f.values, (v, i) => g(v, i)),
});

/** Trace of the sample covariance and the mean of `f`, in float64. */
function stats(f: FeatureMatrix): { trace: number; mean: number[] } {
  const mean = Array.from({ length: f.dims }, (_, c) => {
    let s = 0;
    for (let i = 0; i < f.count; i++) s += f.values[i * f.dims + c];
    return s / f.count;
  });
  let trace = 0;
  for (let i = 0; i < f.count; i++)
    for (let c = 0; c < f.dims; c++) trace += (f.values[i * f.dims + c] - mean[c]) ** 2;
  return { trace: trace / (f.count - 1), mean };
}

describe('symmetricEigenvalues', () => {
  it('keeps the trace and the Frobenius norm of a random symmetric matrix, and finds a diagonal', () => {
    const n = 40;
    const rng = new NumpyRandomState(3);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.gauss();
    let trace = 0;
    let frobenius = 0;
    for (let i = 0; i < n; i++) trace += a[i * n + i];
    for (const v of a) frobenius += v * v;
    const ev = symmetricEigenvalues(Float64Array.from(a), n);
    expect(ev.reduce((s, v) => s + v, 0)).toBeCloseTo(trace, 8);
    expect(ev.reduce((s, v) => s + v * v, 0)).toBeCloseTo(frobenius, 6);
    const diagonal = new Float64Array(9);
    [5, -2, 7].forEach((v, i) => {
      diagonal[i * 3 + i] = v;
    });
    expect([...symmetricEigenvalues(diagonal, 3)].sort((x, y) => x - y)).toEqual([-2, 5, 7]);
  });
});

describe('frechetDistance', () => {
  for (const [count, dims] of [
    [30, 5],
    [12, 40],
  ]) {
    it(`is exact for a copy, a shift and a scaling (${count} vectors of ${dims})`, () => {
      const real = randomFeatures(count, dims, 1);
      const { trace, mean } = stats(real);
      expect(frechetDistance(real, real)).toBeCloseTo(0, 3);
      const shifted = map(real, (v, i) => v + (i % dims === 0 ? 3 : 0));
      expect(frechetDistance(real, shifted)).toBeCloseTo(9, 3);
      // x -> 2x: S_f = 4 S_r, tr sqrt(S_r S_f) = 2 tr S_r, so FID = |mu|^2 + tr S_r.
      const doubled = map(real, (v) => 2 * v);
      const meanSquared = mean.reduce((s, m) => s + m * m, 0);
      expect(frechetDistance(real, doubled)).toBeCloseTo(meanSquared + trace, 3);
    });
  }
});
