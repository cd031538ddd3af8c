// Pixel-level building blocks for grids: blank canvases, pasting, resizing and side-by-side strips,
// all on packed RGB so that pasting is a plain row copy rather than a libvips composite per tile.
import sharp, { type Sharp } from 'sharp';
import type { RgbImage } from './tensor-image.ts';

export interface Rgb {
  r: number;
  g: number;
  b: number;
}

/** Sources at most this large are upscaled with nearest neighbour, so tiny faces stay crisp. */
const NEAREST_UPSCALE_MAX_SOURCE = 64;

export function rawPipeline(image: RgbImage): Sharp {
  assertRgb(image);
  return sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: 3 },
    limitInputPixels: false,
  });
}

/** Runs a pipeline to packed RGB, dropping any alpha it produced (e.g. from an SVG overlay). */
export async function pipelineToRgb(pipeline: Sharp): Promise<RgbImage> {
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 3) return { width: info.width, height: info.height, data };
  if (info.channels !== 4) throw new Error(`expected RGB or RGBA pixels, got ${info.channels} channels`);
  const rgb = Buffer.allocUnsafe(info.width * info.height * 3);
  for (let src = 0, dst = 0; src < data.length; src += 4, dst += 3) {
    rgb[dst] = data[src];
    rgb[dst + 1] = data[src + 1];
    rgb[dst + 2] = data[src + 2];
  }
  return { width: info.width, height: info.height, data: rgb };
}

export function blankImage(width: number, height: number, color: Rgb): RgbImage {
  const data = Buffer.allocUnsafe(width * height * 3);
  for (let i = 0; i < data.length; i += 3) {
    data[i] = color.r;
    data[i + 1] = color.g;
    data[i + 2] = color.b;
  }
  return { width, height, data };
}

/** Copies `src` into `dst` with its top-left corner at (left, top); it must fit entirely. */
export function pasteImage(dst: RgbImage, src: RgbImage, left: number, top: number): void {
  if (left < 0 || top < 0 || left + src.width > dst.width || top + src.height > dst.height) {
    throw new Error(
      `a ${src.width}x${src.height} image at (${left}, ${top}) does not fit a ${dst.width}x${dst.height} canvas`,
    );
  }
  const rowBytes = src.width * 3;
  for (let y = 0; y < src.height; y++) {
    const from = y * rowBytes;
    src.data.copy(dst.data, ((top + y) * dst.width + left) * 3, from, from + rowBytes);
  }
}

/**
 * Nearest neighbour for upscaling tiny images (a 32 px face smoothed to 256 px is a blur);
 * lanczos3 for everything else.
 */
export function resizeKernel(
  from: { width: number; height: number },
  toWidth: number,
): 'nearest' | 'lanczos3' {
  const upscaling = toWidth > from.width;
  return upscaling && Math.max(from.width, from.height) <= NEAREST_UPSCALE_MAX_SOURCE
    ? 'nearest'
    : 'lanczos3';
}

export async function resizeImage(image: RgbImage, width: number, height: number): Promise<RgbImage> {
  if (image.width === width && image.height === height) return image;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`cannot resize to ${width}x${height}`);
  }
  const kernel = resizeKernel(image, width);
  return pipelineToRgb(rawPipeline(image).resize(width, height, { kernel, fit: 'fill' }));
}

/** Resizes to `height`, keeping the aspect ratio. */
export async function resizeToHeight(image: RgbImage, height: number): Promise<RgbImage> {
  const width = Math.max(1, Math.round((image.width * height) / image.height));
  return resizeImage(image, width, height);
}

/**
 * Images side by side, each resized to `height` (default: the tallest), `gap` pixels apart.
 * One grid cell can so show several seeds.
 */
export async function hstack(
  images: RgbImage[],
  height?: number,
  gap = 0,
  background: Rgb = { r: 0, g: 0, b: 0 },
): Promise<RgbImage> {
  if (images.length === 0) throw new Error('hstack needs at least one image');
  const targetHeight = height ?? Math.max(...images.map((img) => img.height));
  const parts = await Promise.all(images.map((img) => resizeToHeight(img, targetHeight)));
  const width = parts.reduce((sum, p) => sum + p.width, 0) + gap * (parts.length - 1);
  const canvas = blankImage(width, targetHeight, background);
  let left = 0;
  for (const part of parts) {
    pasteImage(canvas, part, left, 0);
    left += part.width + gap;
  }
  return canvas;
}

function assertRgb(image: RgbImage): void {
  const { width, height, data } = image;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`bad image size ${width}x${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new Error(`a ${width}x${height} RGB image needs ${width * height * 3} bytes, got ${data.length}`);
  }
}
