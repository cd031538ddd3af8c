// The FFHQ crop (NVlabs ffhq-dataset, recreate_aligned_images): eyes and mouth from the 68
// landmarks define an oriented square around the face, and that square is resampled to the
// output. Matching it matters: a StyleGAN trained or fine-tuned on FFHQ expects faces exactly there.

import type { AffineMatrix, Point } from './types.ts';

export type Quad = [topLeft: Point, bottomLeft: Point, bottomRight: Point, topRight: Point];

export interface FfhqCrop {
  quad: Quad;
  /** Side of the square in source pixels (FFHQ's qsize). */
  size: number;
}

const mean = (points: Point[]): Point => [
  points.reduce((s, p) => s + p[0], 0) / points.length,
  points.reduce((s, p) => s + p[1], 0) / points.length,
];
const add = (a: Point, b: Point): Point => [a[0] + b[0], a[1] + b[1]];
const sub = (a: Point, b: Point): Point => [a[0] - b[0], a[1] - b[1]];
const scale = (a: Point, k: number): Point => [a[0] * k, a[1] * k];
const length = (a: Point) => Math.hypot(a[0], a[1]);
/** FFHQ's `np.flipud(v) * [-1, 1]`: v turned a quarter (clockwise on screen, y pointing down). */
const quarterTurn = (v: Point): Point => [-v[1], v[0]];

/** Eye centres and mouth corners as FFHQ takes them from the iBUG 68-point layout. */
export function ffhqKeypoints(landmarks: readonly Point[]): {
  eyeLeft: Point;
  eyeRight: Point;
  mouthLeft: Point;
  mouthRight: Point;
} {
  if (landmarks.length !== 68) throw new RangeError(`expected 68 landmarks, got ${landmarks.length}`);
  return {
    eyeLeft: mean(landmarks.slice(36, 42)),
    eyeRight: mean(landmarks.slice(42, 48)),
    mouthLeft: landmarks[48],
    mouthRight: landmarks[54],
  };
}

export function ffhqCrop(landmarks: readonly Point[]): FfhqCrop {
  const { eyeLeft, eyeRight, mouthLeft, mouthRight } = ffhqKeypoints(landmarks);
  const eyeAvg = scale(add(eyeLeft, eyeRight), 0.5);
  const eyeToEye = sub(eyeRight, eyeLeft);
  const mouthAvg = scale(add(mouthLeft, mouthRight), 0.5);
  const eyeToMouth = sub(mouthAvg, eyeAvg);

  // Horizontal half-axis: the eye line, averaged with the perpendicular of the eye-to-mouth line
  // so that a head tilt measured either way agrees; its length is set by whichever of the two
  // distances is larger relative to a typical face.
  let x = sub(eyeToEye, quarterTurn(eyeToMouth));
  x = scale(x, 1 / length(x));
  x = scale(x, Math.max(length(eyeToEye) * 2.0, length(eyeToMouth) * 1.8));
  const y = quarterTurn(x);
  const c = add(eyeAvg, scale(eyeToMouth, 0.1));
  const quad: Quad = [sub(sub(c, x), y), add(sub(c, x), y), add(add(c, x), y), sub(add(c, x), y)];
  return { quad, size: length(x) * 2 };
}

/**
 * Output -> source map of a crop to a `resolution`-pixel square, in continuous coordinates
 * (pixel i covers [i, i + 1)), as PIL's QUAD transform used by FFHQ defines it.
 */
export function quadAffine(quad: Quad, resolution: number): AffineMatrix {
  const [topLeft, bottomLeft, , topRight] = quad;
  return [
    (topRight[0] - topLeft[0]) / resolution,
    (bottomLeft[0] - topLeft[0]) / resolution,
    topLeft[0],
    (topRight[1] - topLeft[1]) / resolution,
    (bottomLeft[1] - topLeft[1]) / resolution,
    topLeft[1],
  ];
}

export function applyAffine(m: AffineMatrix, [u, v]: Point): Point {
  return [m[0] * u + m[1] * v + m[2], m[3] * u + m[4] * v + m[5]];
}

export function invertAffine(m: AffineMatrix): AffineMatrix {
  const det = m[0] * m[4] - m[1] * m[3];
  if (det === 0) throw new RangeError('singular affine transform');
  const a = m[4] / det;
  const b = -m[1] / det;
  const d = -m[3] / det;
  const e = m[0] / det;
  return [a, b, -(a * m[2] + b * m[5]), d, e, -(d * m[2] + e * m[5])];
}
