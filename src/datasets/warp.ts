// Resampling a source image through an affine map, with FFHQ's reflect padding where the crop
// reaches past the image border. Bilinear sampling alone aliases when shrinking, so (like FFHQ's
// shrink step and its oversized transform followed by an antialiased resize) the source region is
// first downscaled by sharp to about two source pixels per output pixel, sampled at twice the
// output size, and box-averaged down.

import { type Quad, quadAffine } from './ffhq.ts';
import { type RgbImage, rawInput, toRgb } from './image.ts';
import type { AffineMatrix } from './types.ts';

const SUPERSAMPLE = 2;

/** numpy.pad 'reflect' index: mirrors about the first/last pixel without repeating it. */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let r = i % period;
  if (r < 0) r += period;
  return r < n ? r : period - r;
}

/**
 * Samples `outWidth` x `outHeight` pixels; `affine` maps output continuous coordinates to source
 * continuous coordinates (pixel centres at +0.5).
 */
export function warpAffine(
  src: RgbImage,
  affine: AffineMatrix,
  outWidth: number,
  outHeight = outWidth,
): RgbImage {
  const { data, width, height } = src;
  const out = Buffer.allocUnsafe(outWidth * outHeight * 3);
  const [a, b, c, d, e, f] = affine;
  const xs = new Int32Array(2);
  const ys = new Int32Array(2);
  let o = 0;
  for (let v = 0; v < outHeight; v++) {
    for (let u = 0; u < outWidth; u++) {
      // Source position in index space (pixel centres at integers).
      const sx = a * (u + 0.5) + b * (v + 0.5) + c - 0.5;
      const sy = d * (u + 0.5) + e * (v + 0.5) + f - 0.5;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      xs[0] = reflectIndex(x0, width);
      xs[1] = reflectIndex(x0 + 1, width);
      ys[0] = reflectIndex(y0, height) * width;
      ys[1] = reflectIndex(y0 + 1, height) * width;
      const p00 = (ys[0] + xs[0]) * 3;
      const p10 = (ys[0] + xs[1]) * 3;
      const p01 = (ys[1] + xs[0]) * 3;
      const p11 = (ys[1] + xs[1]) * 3;
      const w00 = (1 - fx) * (1 - fy);
      const w10 = fx * (1 - fy);
      const w01 = (1 - fx) * fy;
      const w11 = fx * fy;
      for (let ch = 0; ch < 3; ch++) {
        out[o++] = Math.round(
          data[p00 + ch] * w00 + data[p10 + ch] * w10 + data[p01 + ch] * w01 + data[p11 + ch] * w11,
        );
      }
    }
  }
  return { data: out, width: outWidth, height: outHeight };
}

/** Averages each factor x factor block. */
export function boxDownsample(src: RgbImage, factor: number): RgbImage {
  const width = Math.floor(src.width / factor);
  const height = Math.floor(src.height / factor);
  const out = Buffer.allocUnsafe(width * height * 3);
  const area = factor * factor;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let ch = 0; ch < 3; ch++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++) {
          const row = (y * factor + dy) * src.width;
          for (let dx = 0; dx < factor; dx++) sum += src.data[(row + x * factor + dx) * 3 + ch];
        }
        out[(y * width + x) * 3 + ch] = Math.round(sum / area);
      }
    }
  }
  return { data: out, width, height };
}

export function cropRgb(src: RgbImage, left: number, top: number, width: number, height: number): RgbImage {
  const out = Buffer.allocUnsafe(width * height * 3);
  for (let y = 0; y < height; y++) {
    const start = ((top + y) * src.width + left) * 3;
    src.data.copy(out, y * width * 3, start, start + width * 3);
  }
  return { data: out, width, height };
}

/** Resamples the FFHQ crop `quad` of `image` to a `resolution`-pixel square. */
export async function alignToQuad(image: RgbImage, quad: Quad, resolution: number): Promise<RgbImage> {
  const internal = resolution * SUPERSAMPLE;
  const [a, b, c, d, e, f] = quadAffine(quad, resolution);
  // Output at `internal` pixels -> source continuous coordinates.
  let affine: AffineMatrix = [a / SUPERSAMPLE, b / SUPERSAMPLE, c, d / SUPERSAMPLE, e / SUPERSAMPLE, f];
  const sourceStep = Math.hypot(affine[0], affine[3]);

  // Only the part of the image under the quad (plus a margin for the bilinear taps) is needed.
  const margin = 2 + Math.ceil(2 * sourceStep);
  const xs = quad.map((p) => p[0]);
  const ys = quad.map((p) => p[1]);
  const left = clamp(Math.floor(Math.min(...xs)) - margin, 0, image.width - 1);
  const top = clamp(Math.floor(Math.min(...ys)) - margin, 0, image.height - 1);
  const right = clamp(Math.ceil(Math.max(...xs)) + margin, left + 1, image.width);
  const bottom = clamp(Math.ceil(Math.max(...ys)) + margin, top + 1, image.height);
  let region = cropRgb(image, left, top, right - left, bottom - top);
  affine = [affine[0], affine[1], affine[2] - left, affine[3], affine[4], affine[5] - top];

  if (sourceStep > 1) {
    const width = Math.max(1, Math.round(region.width / sourceStep));
    const height = Math.max(1, Math.round(region.height / sourceStep));
    const sx = width / region.width;
    const sy = height / region.height;
    region = await toRgb(rawInput(region).resize(width, height, { fit: 'fill', kernel: 'lanczos3' }));
    affine = [affine[0] * sx, affine[1] * sx, affine[2] * sx, affine[3] * sy, affine[4] * sy, affine[5] * sy];
  }
  return boxDownsample(warpAffine(region, affine, internal), SUPERSAMPLE);
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), high);
}
