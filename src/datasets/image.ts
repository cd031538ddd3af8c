// Decoding an untrusted image: the format is recognised from its magic bytes, the size from its
// header (sharp reads only the header for metadata), and only then are pixels decoded, with
// sharp's own pixel limit as a second guard and truncated/corrupt files failing rather than
// coming back half grey.

import sharp, { type Sharp } from 'sharp';
import type { ArchiveLimits } from './limits.ts';
import { type ImageFormat, sniffArchive, sniffImage } from './sniff.ts';
import type { EntryStatus } from './types.ts';

/** Packed 8-bit RGB, row-major. */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

export interface InspectedImage {
  format: ImageFormat;
  /** Size after EXIF orientation, which every later step works in. */
  width: number;
  height: number;
  /** A fresh sharp pipeline over the image: oriented, first frame only, limits applied. */
  open(): Sharp;
}

export interface ImageRejection {
  status: Extract<EntryStatus, 'not-an-image' | 'too-large' | 'unreadable' | 'nested-archive'>;
  reason: string;
}

// Transparent areas become white: training images have no alpha.
const BACKGROUND = { r: 255, g: 255, b: 255 };

export async function inspectImage(
  data: Buffer,
  limits: ArchiveLimits,
): Promise<InspectedImage | ImageRejection> {
  const format = sniffImage(data);
  if (!format) {
    const archive = sniffArchive(data);
    if (archive) return { status: 'nested-archive', reason: `${archive} archive inside the archive` };
    return { status: 'not-an-image', reason: 'not a JPEG, PNG, WebP or GIF file (by content)' };
  }
  const options = {
    failOn: 'error',
    limitInputPixels: limits.maxPixels,
    autoOrient: true,
    pages: 1,
  } as const;
  let width: number;
  let height: number;
  try {
    // No pixel limit here (not even sharp's default): only the header is read, and the size goes
    // into our own clearer message below.
    const meta = await sharp(data, { failOn: 'error', pages: 1, limitInputPixels: false }).metadata();
    ({ width, height } = meta.autoOrient ?? meta);
  } catch (err) {
    return { status: 'unreadable', reason: `cannot read the ${format} header: ${(err as Error).message}` };
  }
  if (!(width > 0 && height > 0)) return { status: 'unreadable', reason: `${format} header has no size` };
  if (width * height > limits.maxPixels) {
    return {
      status: 'too-large',
      reason: `${width}x${height} is ${((width * height) / 1e6).toFixed(0)} MP, over the ${(limits.maxPixels / 1e6).toFixed(0)} MP limit`,
    };
  }
  return { format, width, height, open: () => sharp(data, options) };
}

export function isRejection(value: InspectedImage | ImageRejection): value is ImageRejection {
  return 'status' in value;
}

/** Runs a pipeline to packed RGB (alpha flattened onto white, any colour space converted to sRGB). */
export async function toRgb(pipeline: Sharp): Promise<RgbImage> {
  const { data, info } = await pipeline
    .flatten({ background: BACKGROUND })
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
  return { data, width: info.width, height: info.height };
}

export function rawInput(image: RgbImage): Sharp {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
}
