// Seeds -> images with a generator, in batches, as NVIDIA's gen_images.py does it: z from
// numpy's RandomState(seed), noise_mode 'const' by default, truncation psi.
import type { GenerateOptions, Generator } from './networks/generator.ts';
import { zFromSeed } from './seeds.ts';
import { tf } from './tf.ts';

export interface GenerateBatchOptions extends GenerateOptions {
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export function seedsToZ(seeds: number[], zDim: number): tf.Tensor2D {
  const data = new Float32Array(seeds.length * zDim);
  for (const [i, seed] of seeds.entries()) data.set(zFromSeed(seed, zDim), i * zDim);
  return tf.tensor2d(data, [seeds.length, zDim]);
}

/**
 * Generates one image per seed, `batchSize` at a time. Calls `consume` with each batch's NHWC
 * images (raw, roughly [-1, 1]) and disposes them afterwards, so memory stays bounded by a batch.
 */
export async function generateFromSeeds(
  G: Generator,
  seeds: number[],
  consume: (images: tf.Tensor4D, seeds: number[]) => Promise<void>,
  opts: GenerateBatchOptions = {},
): Promise<void> {
  const { batchSize = 8, onProgress, ...genOpts } = opts;
  for (let start = 0; start < seeds.length; start += batchSize) {
    const batchSeeds = seeds.slice(start, start + batchSize);
    const images = tf.tidy(() =>
      G.generate(seedsToZ(batchSeeds, G.cfg.zDim), { noiseMode: 'const', ...genOpts }),
    );
    try {
      await consume(images, batchSeeds);
    } finally {
      images.dispose();
    }
    onProgress?.(Math.min(start + batchSize, seeds.length), seeds.length);
  }
}
