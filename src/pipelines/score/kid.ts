// Kernel Inception Distance on feature vectors, computed as NVlabs' stylegan2-ada-pytorch does
// (metrics/kernel_inception_distance.py, after Binkowski et al., "Demystifying MMD GANs"): the
// unbiased estimate of MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
// over random subsets of both sides. The standard deviation over those subsets is reported too,
// as Binkowski's original code does.
//
// The three Gram matrices are computed once (a matrix product on the active tfjs backend); each
// subset then only sums entries, so 100 subsets of 1000 cost about as much as one.
import { NumpyRandomState } from '../../model/seeds.ts';
import { tf } from '../../model/tf.ts';

/** Features of one image set: `count` rows of `dims` values, row-major. */
export interface FeatureMatrix {
  count: number;
  dims: number;
  values: Float32Array;
}

export interface KidOptions {
  /** Subsets averaged (official: 100). */
  numSubsets?: number;
  /** Largest subset (official: 1000). */
  maxSubsetSize?: number;
  /** Seeds the subset sampling, so the same features give the same score. */
  seed?: number;
  /** Overrides the subset size rule of kidSubsetSize (at most the smaller side). */
  subsetSize?: number;
}

export interface KidResult {
  kid: number;
  /** Standard deviation of the per-subset estimates. */
  kidStd: number;
  subsetSize: number;
  numSubsets: number;
}

export const KID_DEFAULTS = { numSubsets: 100, maxSubsetSize: 1000, seed: 0 } as const;

/**
 * The subset size: the official min(n_real, n_fake, max_subset_size), but at most half the smaller
 * side, so that subsets differ from each other and their spread says something. The estimator is
 * unbiased for any size; only its variance grows as subsets shrink.
 */
export function kidSubsetSize(numReal: number, numFake: number, maxSubsetSize: number): number {
  const smaller = Math.min(numReal, numFake);
  return Math.max(2, Math.min(maxSubsetSize, smaller >= 4 ? Math.floor(smaller / 2) : smaller));
}

/** (a . b^T / d + 1)^3 for every row pair, as float64 [a.count x b.count]. */
function cubicKernel(a: FeatureMatrix, b: FeatureMatrix): Float64Array {
  const dot = tf.tidy(() =>
    tf.matMul(
      tf.tensor2d(a.values, [a.count, a.dims]),
      tf.tensor2d(b.values, [b.count, b.dims]),
      false,
      true,
    ),
  );
  const products = dot.dataSync();
  dot.dispose();
  const out = new Float64Array(products.length);
  for (let i = 0; i < products.length; i++) {
    const v = products[i] / a.dims + 1;
    out[i] = v * v * v;
  }
  return out;
}

/** `m` distinct indices of `0..n-1` (a partial Fisher-Yates shuffle). */
function choose(rng: NumpyRandomState, n: number, m: number): Uint32Array {
  const pool = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(rng.randomSample() * (n - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, m);
}

function checkFeatures(real: FeatureMatrix, fake: FeatureMatrix): void {
  for (const [side, f] of [
    ['real', real],
    ['fake', fake],
  ] as const) {
    if (f.count < 2) throw new RangeError(`KID needs at least 2 ${side} feature vectors, got ${f.count}`);
    if (f.values.length !== f.count * f.dims)
      throw new RangeError(`${side} features: ${f.values.length} values are not ${f.count} x ${f.dims}`);
  }
  if (real.dims !== fake.dims)
    throw new RangeError(`feature sizes differ: real ${real.dims}, fake ${fake.dims}`);
}

/** KID between two feature sets (see the file header). */
export function kernelInceptionDistance(
  real: FeatureMatrix,
  fake: FeatureMatrix,
  options: KidOptions = {},
): KidResult {
  checkFeatures(real, fake);
  const { numSubsets, maxSubsetSize, seed } = { ...KID_DEFAULTS, ...options };
  const m =
    options.subsetSize === undefined
      ? kidSubsetSize(real.count, fake.count, maxSubsetSize)
      : Math.min(options.subsetSize, real.count, fake.count);
  if (!(Number.isInteger(m) && m >= 2)) throw new RangeError(`KID subset size must be at least 2, got ${m}`);
  if (!(Number.isInteger(numSubsets) && numSubsets >= 1))
    throw new RangeError(`KID needs at least one subset, got ${numSubsets}`);
  const kFake = cubicKernel(fake, fake);
  const kReal = cubicKernel(real, real);
  const kCross = cubicKernel(fake, real);
  const rng = new NumpyRandomState(seed);
  const estimates = new Float64Array(numSubsets);
  for (let s = 0; s < numSubsets; s++) {
    const x = choose(rng, fake.count, m);
    const y = choose(rng, real.count, m);
    // a = k(x, x) + k(y, y) without the diagonals, b = k(x, y): t = sum(a)/(m-1) - 2 sum(b)/m.
    let within = 0;
    let cross = 0;
    for (let i = 0; i < m; i++) {
      const xRow = x[i] * fake.count;
      const yRow = y[i] * real.count;
      const crossRow = x[i] * real.count;
      for (let j = 0; j < m; j++) {
        if (i !== j) within += kFake[xRow + x[j]] + kReal[yRow + y[j]];
        cross += kCross[crossRow + y[j]];
      }
    }
    estimates[s] = (within / (m - 1) - (2 * cross) / m) / m;
  }
  const kid = estimates.reduce((a, b) => a + b, 0) / numSubsets;
  const variance = estimates.reduce((a, v) => a + (v - kid) ** 2, 0) / numSubsets;
  return { kid, kidStd: Math.sqrt(variance), subsetSize: m, numSubsets };
}
