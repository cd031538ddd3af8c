// Encoding under a byte limit: every image the bot posts must fit Discord's upload limit (10 MiB by
// default, `attachment_size_limit` per interaction). Lossless PNG when it fits, then WebP, then JPEG
// at falling quality, then the same at 0.75x steps of size. Attempts that earlier results show cannot
// fit are skipped, because a WebP encode of a large noisy grid costs seconds.
import { UserError } from '../errors.ts';
import { rawPipeline, resizeImage } from './compose.ts';
import type { RgbImage } from './tensor-image.ts';

export type ImageFormat = 'png' | 'webp' | 'jpeg';

export interface EncodedImage {
  buffer: Buffer;
  format: ImageFormat;
  width: number;
  height: number;
  /** Size relative to the input: 1, or a power of 0.75 when it had to be downscaled. */
  scaled: number;
}

export interface EncodeOptions {
  maxBytes?: number;
  /** Format tried first; the others follow in the order png, webp, jpeg. */
  prefer?: ImageFormat;
}

export const DISCORD_UPLOAD_LIMIT = 10 * 1024 * 1024;
export const MIME_TYPES: Record<ImageFormat, string> = {
  png: 'image/png',
  webp: 'image/webp',
  jpeg: 'image/jpeg',
};
export const FILE_EXTENSIONS: Record<ImageFormat, string> = { png: '.png', webp: '.webp', jpeg: '.jpg' };

const FORMAT_ORDER: ImageFormat[] = ['png', 'webp', 'jpeg'];
const LOSSY_QUALITIES = [90, 80, 70];
const DOWNSCALE_STEP = 0.75;
// WebP cannot store a side longer than this.
const WEBP_MAX_SIDE = 16383;
// A lossy result this far over the limit will not fit at a lower quality either: shrink instead.
const HOPELESS_FACTOR = 2;
// Attempts predicted (from bytes per pixel at a larger size) to land this far over are skipped.
// Bytes per pixel grow as an image shrinks, so the prediction errs low and the margin is small.
const PREDICTION_MARGIN = 1.1;
const MIN_SIDE = 16;

interface Attempt {
  format: ImageFormat;
  quality?: number;
}

/** Encodes `image` in the best format and size that fits `maxBytes`. */
export async function encodeUnderLimit(image: RgbImage, opts: EncodeOptions = {}): Promise<EncodedImage> {
  const maxBytes = opts.maxBytes ?? DISCORD_UPLOAD_LIMIT;
  if (!(Number.isFinite(maxBytes) && maxBytes > 0))
    throw new Error(`maxBytes must be positive, got ${maxBytes}`);
  const formats = orderFormats(opts.prefer ?? 'png');
  const attempts = formats.flatMap((format): Attempt[] =>
    format === 'png' ? [{ format }] : LOSSY_QUALITIES.map((quality) => ({ format, quality })),
  );
  const bytesPerPixel = new Map<string, number>();

  for (let steps = 0; ; ) {
    const scaled = DOWNSCALE_STEP ** steps;
    const width = Math.round(image.width * scaled);
    const height = Math.round(image.height * scaled);
    if (Math.min(width, height) < MIN_SIDE) {
      throw new UserError(
        `cannot fit a ${image.width}x${image.height} image into ${formatBytes(maxBytes)}, even downscaled`,
      );
    }
    const source = steps === 0 ? image : await resizeImage(image, width, height);
    const pixels = width * height;
    const hopeless = new Set<ImageFormat>();
    let smallest = Number.POSITIVE_INFINITY;
    for (const attempt of attempts) {
      if (hopeless.has(attempt.format)) continue;
      if (attempt.format === 'webp' && Math.max(width, height) > WEBP_MAX_SIDE) continue;
      const key = `${attempt.format}:${attempt.quality ?? ''}`;
      const known = bytesPerPixel.get(key);
      if (known !== undefined && known * pixels > maxBytes * PREDICTION_MARGIN) continue;
      const buffer = await encode(source, attempt);
      bytesPerPixel.set(key, buffer.length / pixels);
      if (buffer.length <= maxBytes) return { buffer, format: attempt.format, width, height, scaled };
      smallest = Math.min(smallest, buffer.length);
      if (attempt.quality !== undefined && buffer.length > maxBytes * HOPELESS_FACTOR)
        hopeless.add(attempt.format);
    }
    // Jump as many steps as the smallest result says are needed (bytes scale about with area).
    const needed = Number.isFinite(smallest)
      ? Math.ceil(Math.log(maxBytes / smallest) / Math.log(DOWNSCALE_STEP ** 2))
      : 1;
    steps += Math.max(1, needed);
  }
}

function orderFormats(prefer: ImageFormat): ImageFormat[] {
  if (!FORMAT_ORDER.includes(prefer)) throw new Error(`unknown image format ${prefer}`);
  return [prefer, ...FORMAT_ORDER.filter((f) => f !== prefer)];
}

async function encode(image: RgbImage, attempt: Attempt): Promise<Buffer> {
  const pipeline = rawPipeline(image);
  switch (attempt.format) {
    case 'png':
      return pipeline.png().toBuffer();
    case 'webp':
      return pipeline.webp({ quality: attempt.quality }).toBuffer();
    case 'jpeg':
      return pipeline.jpeg({ quality: attempt.quality }).toBuffer();
  }
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}
