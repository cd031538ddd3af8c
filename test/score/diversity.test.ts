// Sample diversity (mean pairwise feature distance): exact on hand-made vectors, zero for a
// collapsed set, lower when a set repeats itself, and refused for too few vectors.
import { describe, expect, it } from 'vitest';
import { NumpyRandomState } from '../../src/model/seeds.ts';
import { DIVERSITY_SAMPLES, meanPairwiseDistance } from '../../src/pipelines/score/diversity.ts';
import type { FeatureMatrix } from '../../src/pipelines/score/kid.ts';

function features(rows: number[][]): FeatureMatrix {
  return { count: rows.length, dims: rows[0].length, values: Float32Array.from(rows.flat()) };
}

function gaussian(count: number, dims: number, seed: number): FeatureMatrix {
  const rng = new NumpyRandomState(seed);
  return { count, dims, values: Float32Array.from({ length: count * dims }, () => rng.gauss()) };
}

describe('meanPairwiseDistance', () => {
  it('averages the Euclidean distance over every pair', () => {
    // Pairs: (0,0)-(3,4) = 5, (0,0)-(6,8) = 10, (3,4)-(6,8) = 5.
    expect(
      meanPairwiseDistance(
        features([
          [0, 0],
          [3, 4],
          [6, 8],
        ]),
      ),
    ).toBeCloseTo(20 / 3, 10);
  });

  it('is zero for a collapsed set and falls when a set repeats a few of its images', () => {
    expect(meanPairwiseDistance(features(Array.from({ length: 10 }, () => [1, 2, 3])))).toBe(0);
    const varied = gaussian(64, 32, 1);
    const repeated: FeatureMatrix = {
      ...varied,
      values: Float32Array.from({ length: varied.values.length }, (_, i) => varied.values[i % (4 * 32)]),
    };
    expect(meanPairwiseDistance(repeated)).toBeLessThan(0.8 * meanPairwiseDistance(varied));
  });

  it(`uses the first ${DIVERSITY_SAMPLES} vectors by default, or the count asked for`, () => {
    const many = gaussian(100, 8, 2);
    const first = { ...many, count: DIVERSITY_SAMPLES, values: many.values.slice(0, DIVERSITY_SAMPLES * 8) };
    expect(meanPairwiseDistance(many)).toBe(meanPairwiseDistance(first));
    const two = meanPairwiseDistance(many, 2);
    let squared = 0;
    for (let c = 0; c < 8; c++) squared += (many.values[c] - many.values[8 + c]) ** 2;
    expect(two).toBeCloseTo(Math.sqrt(squared), 5);
  });

  it('refuses fewer than two vectors or a count beyond the set', () => {
    expect(() => meanPairwiseDistance(features([[1, 2]]))).toThrow(/2 to 1 feature vectors/);
    expect(() => meanPairwiseDistance(gaussian(5, 3, 3), 6)).toThrow(/got 6/);
  });
});
