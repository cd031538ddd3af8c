// Sample diversity: the mean pairwise Euclidean distance between the feature vectors of a set's
// images. A generator that has collapsed to a few faces scores near 0 however good each face is,
// which KID alone can hide on small sets; comparing a model's diversity with its training set's
// (the same count of images, the same feature network) says how much of the set's variety it
// reproduces.
import type { FeatureMatrix } from './kid.ts';

/** Images a side that diversity is measured on (issue #17's "64 samples"). */
export const DIVERSITY_SAMPLES = 64;

/** Mean distance over all pairs of the first `count` rows (default: up to DIVERSITY_SAMPLES). */
export function meanPairwiseDistance(
  features: FeatureMatrix,
  count = Math.min(features.count, DIVERSITY_SAMPLES),
): number {
  const { dims, values } = features;
  if (!(Number.isInteger(count) && count >= 2 && count <= features.count)) {
    throw new RangeError(`diversity needs 2 to ${features.count} feature vectors, got ${count}`);
  }
  if (values.length !== features.count * dims) {
    throw new RangeError(`features: ${values.length} values are not ${features.count} x ${dims}`);
  }
  let sum = 0;
  for (let i = 0; i < count; i++) {
    for (let j = i + 1; j < count; j++) {
      let squared = 0;
      for (let c = 0; c < dims; c++) {
        const d = values[i * dims + c] - values[j * dims + c];
        squared += d * d;
      }
      sum += Math.sqrt(squared);
    }
  }
  return sum / ((count * (count - 1)) / 2);
}
