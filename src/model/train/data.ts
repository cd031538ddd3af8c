// Training images: a folder decoded once with sharp to the model resolution and kept as 8-bit
// RGB (a few hundred images at 256x256 are tens of MB), served as NHWC batches in [-1, 1]. With
// mirroring, item i + count is the x-flipped copy of image i, as the official --mirror=1 does,
// and an epoch is one pass over every item, flips included.
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import sharp from 'sharp';
import { UserError } from '../../errors.ts';
import { NumpyRandomState } from '../seeds.ts';
import { tf } from '../tf.ts';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);
// Transparent areas become white, as the dataset builder does.
const BACKGROUND = { r: 255, g: 255, b: 255 };

export class TrainingSet {
  readonly count: number;

  constructor(
    /** [count, resolution, resolution, 3] 8-bit RGB. */
    readonly pixels: Uint8Array,
    readonly resolution: number,
    /** Content hash: which images a snapshot was trained on. */
    readonly id: string = contentId(pixels),
  ) {
    const perImage = resolution * resolution * 3;
    if (!(resolution > 0) || pixels.length === 0 || pixels.length % perImage !== 0) {
      throw new Error(
        `training set: ${pixels.length} bytes are not whole ${resolution}x${resolution} RGB images`,
      );
    }
    this.count = pixels.length / perImage;
  }

  /**
   * Decodes every image of `dir` (PNG, JPEG, WebP; sorted by name), scaled and centre-cropped to
   * `resolution` squares.
   */
  static async fromFolder(dir: string, resolution: number): Promise<TrainingSet> {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort();
    } catch (err) {
      throw new UserError(`cannot read the training images in ${dir}: ${(err as Error).message}`);
    }
    if (names.length === 0) {
      throw new UserError(
        `no training images in ${dir}`,
        'put PNG, JPEG or WebP files directly in that folder',
      );
    }
    const perImage = resolution * resolution * 3;
    const pixels = new Uint8Array(names.length * perImage);
    for (const [i, name] of names.entries()) {
      try {
        const { data, info } = await sharp(join(dir, name))
          .rotate()
          .resize(resolution, resolution, { fit: 'cover' })
          .flatten({ background: BACKGROUND })
          .toColourspace('srgb')
          .raw()
          .toBuffer({ resolveWithObject: true });
        if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
        pixels.set(data, i * perImage);
      } catch (err) {
        throw new UserError(`cannot decode training image ${join(dir, name)}: ${(err as Error).message}`);
      }
    }
    return new TrainingSet(pixels, resolution);
  }

  /** Items per epoch: every image, and its mirror image when mirroring. */
  itemsPerEpoch(mirror: boolean): number {
    return mirror ? 2 * this.count : this.count;
  }

  /** NHWC float32 in [-1, 1]; item >= count is the x-flip of image item - count. */
  batch(items: ArrayLike<number>): tf.Tensor4D {
    const r = this.resolution;
    const perImage = r * r * 3;
    const out = new Float32Array(items.length * perImage);
    for (let n = 0; n < items.length; n++) {
      const item = items[n];
      const flipped = item >= this.count;
      const image = flipped ? item - this.count : item;
      if (!(image >= 0 && image < this.count)) throw new RangeError(`training item ${item} out of range`);
      const src = image * perImage;
      const dst = n * perImage;
      for (let y = 0; y < r; y++) {
        for (let x = 0; x < r; x++) {
          const from = src + (y * r + (flipped ? r - 1 - x : x)) * 3;
          const to = dst + (y * r + x) * 3;
          for (let c = 0; c < 3; c++) out[to + c] = this.pixels[from + c] / 127.5 - 1;
        }
      }
    }
    return tf.tensor4d(out, [items.length, r, r, 3]);
  }
}

function contentId(pixels: Uint8Array): string {
  return createHash('sha256').update(pixels).digest('hex').slice(0, 16);
}

/**
 * The items of consecutive training images `[start, start + length)` of an endless stream made
 * of one shuffled pass per epoch: a resumed run continues exactly where the snapshot stopped.
 */
export function streamItems(itemsPerEpoch: number, seed: number, start: number, length: number): number[] {
  const out: number[] = [];
  let epoch = Math.floor(start / itemsPerEpoch);
  let offset = start - epoch * itemsPerEpoch;
  while (out.length < length) {
    const order = epochOrder(itemsPerEpoch, seed, epoch);
    for (; offset < itemsPerEpoch && out.length < length; offset++) out.push(order[offset]);
    epoch++;
    offset = 0;
  }
  return out;
}

const orderCache = new Map<string, Uint32Array>();

/** The shuffled order of epoch `epoch` (Fisher-Yates from a seed derived from the run's). */
export function epochOrder(itemsPerEpoch: number, seed: number, epoch: number): Uint32Array {
  const key = `${itemsPerEpoch}|${seed}|${epoch}`;
  let order = orderCache.get(key);
  if (!order) {
    const rng = new NumpyRandomState((seed * 1_000_003 + epoch * 7919) % 2 ** 32);
    order = Uint32Array.from({ length: itemsPerEpoch }, (_, i) => i);
    for (let i = itemsPerEpoch - 1; i > 0; i--) {
      const j = Math.floor(rng.randomSample() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    // One epoch ahead is all a batch ever spans.
    if (orderCache.size > 4) orderCache.clear();
    orderCache.set(key, order);
  }
  return order;
}
