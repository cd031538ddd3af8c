// FID on the same features as KID (optional, `facestyle score --fid`): |mu_r - mu_f|^2 +
// tr(S_r) + tr(S_f) - 2 tr(sqrt(S_r S_f)), as NVlabs' frechet_inception_distance.py, but with
// the square-root term computed in sample space: with A (n x d) and B (m x d) the centred
// features, S_r S_f has the same non-zero eigenvalues as (A B^T)(A B^T)^T / ((n-1)(m-1)), so
// tr(sqrt(S_r S_f)) is the sum of the singular values of A B^T over sqrt((n-1)(m-1)). That needs
// the eigenvalues of one n x n symmetric matrix instead of a d x d matrix square root.
import type { FeatureMatrix } from './kid.ts';

function centred(f: FeatureMatrix): { values: Float32Array; mean: Float64Array } {
  const mean = new Float64Array(f.dims);
  for (let i = 0; i < f.count; i++) for (let c = 0; c < f.dims; c++) mean[c] += f.values[i * f.dims + c];
  for (let c = 0; c < f.dims; c++) mean[c] /= f.count;
  const values = new Float32Array(f.values.length);
  for (let i = 0; i < f.count; i++)
    for (let c = 0; c < f.dims; c++) values[i * f.dims + c] = f.values[i * f.dims + c] - mean[c];
  return { values, mean };
}

/**
 * Eigenvalues of a symmetric n x n matrix (row-major, overwritten): Householder reduction to
 * tridiagonal form, then the implicit QL iteration (Numerical Recipes tred2/tqli, without vectors).
 */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    let h = 0;
    if (l > 0) {
      let scale = 0;
      for (let k = 0; k <= l; k++) scale += Math.abs(a[i * n + k]);
      if (scale === 0) {
        e[i] = a[i * n + l];
      } else {
        for (let k = 0; k <= l; k++) {
          a[i * n + k] /= scale;
          h += a[i * n + k] * a[i * n + k];
        }
        let f = a[i * n + l];
        const g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
        e[i] = scale * g;
        h -= f * g;
        a[i * n + l] = f - g;
        f = 0;
        for (let j = 0; j <= l; j++) {
          let gj = 0;
          for (let k = 0; k <= j; k++) gj += a[j * n + k] * a[i * n + k];
          for (let k = j + 1; k <= l; k++) gj += a[k * n + j] * a[i * n + k];
          e[j] = gj / h;
          f += e[j] * a[i * n + j];
        }
        const hh = f / (h + h);
        for (let j = 0; j <= l; j++) {
          const fj = a[i * n + j];
          const gj = e[j] - hh * fj;
          e[j] = gj;
          for (let k = 0; k <= j; k++) a[j * n + k] -= fj * e[k] + gj * a[i * n + k];
        }
      }
    } else {
      e[i] = a[i * n + l];
    }
    d[i] = h;
  }
  for (let i = 0; i < n; i++) d[i] = a[i * n + i];
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    let m: number;
    do {
      for (m = l; m < n - 1; m++) {
        const dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
        if (Math.abs(e[m]) <= Number.EPSILON * dd) break;
      }
      if (m !== l) {
        if (iter++ === 60) throw new Error('symmetricEigenvalues: no convergence');
        let g = (d[l + 1] - d[l]) / (2 * e[l]);
        let r = Math.hypot(g, 1);
        g = d[m] - d[l] + e[l] / (g + (g >= 0 ? Math.abs(r) : -Math.abs(r)));
        let s = 1;
        let c = 1;
        let p = 0;
        let i: number;
        for (i = m - 1; i >= l; i--) {
          let f = s * e[i];
          const b = c * e[i];
          r = Math.hypot(f, g);
          e[i + 1] = r;
          if (r === 0) {
            d[i + 1] -= p;
            e[m] = 0;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
          f = 0;
        }
        if (r === 0 && i >= l) continue;
        d[l] -= p;
        e[l] = g;
        e[m] = 0;
      }
    } while (m !== l);
  }
  return d;
}

/** X Y^T for row-major X (rows x k) and Y (cols x k), in float64. */
function multiplyTransposed(
  x: ArrayLike<number>,
  rows: number,
  y: ArrayLike<number>,
  cols: number,
  k: number,
): Float64Array {
  const out = new Float64Array(rows * cols);
  const xRow = new Float64Array(k);
  for (let i = 0; i < rows; i++) {
    for (let c = 0; c < k; c++) xRow[c] = x[i * k + c];
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      const base = j * k;
      for (let c = 0; c < k; c++) sum += xRow[c] * y[base + c];
      out[i * cols + j] = sum;
    }
  }
  return out;
}

/** Fréchet distance of the two feature sets' Gaussian fits (see the file header). */
export function frechetDistance(real: FeatureMatrix, fake: FeatureMatrix): number {
  if (real.dims !== fake.dims)
    throw new RangeError(`feature sizes differ: real ${real.dims}, fake ${fake.dims}`);
  if (real.count < 2 || fake.count < 2) throw new RangeError('FID needs at least 2 feature vectors a side');
  const r = centred(real);
  const f = centred(fake);
  let meanTerm = 0;
  for (let c = 0; c < real.dims; c++) meanTerm += (r.mean[c] - f.mean[c]) ** 2;
  let traceReal = 0;
  for (const v of r.values) traceReal += v * v;
  traceReal /= real.count - 1;
  let traceFake = 0;
  for (const v of f.values) traceFake += v * v;
  traceFake /= fake.count - 1;
  // G = (A B^T)(A B^T)^T, n x n, in float64: its near-zero eigenvalues (rank <= d) must stay near
  // zero, and float32 products would turn them into square roots of rounding noise.
  const cross = multiplyTransposed(r.values, real.count, f.values, fake.count, real.dims);
  const g = multiplyTransposed(cross, real.count, cross, real.count, fake.count);
  const eigenvalues = symmetricEigenvalues(g, real.count);
  let sqrtTrace = 0;
  for (const ev of eigenvalues) sqrtTrace += Math.sqrt(Math.max(0, ev));
  sqrtTrace /= Math.sqrt((real.count - 1) * (fake.count - 1));
  return meanTerm + traceReal + traceFake - 2 * sqrtTrace;
}
