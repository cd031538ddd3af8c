// Seeds -> images with a generator, in batches, as NVIDIA's gen_images.py does it: z from
// numpy's RandomState(seed), noise_mode 'const' by default, truncation psi.
import { channelsAt, type GeneratorConfig, synthesisResolutions } from './config.ts';
import type { GenerateOptions, Generator } from './networks/generator.ts';
import { type Variation, variationZ, zFromSeed } from './seeds.ts';
import { tf } from './tf.ts';

/**
 * wasm's heap ends at 4 GiB, and a pass that outgrows it aborts with "memory access out of bounds",
 * leaving the backend unusable: not an error a worker can catch and retry smaller. Half of it for
 * one pass leaves room for the weights and for fragmentation.
 */
const WASM_PASS_BUDGET_BYTES = 2 * 2 ** 30;
/**
 * Live float32 feature maps of the largest block, per image, at a synthesis pass's peak (the
 * up-sampling conv's padded input and its polyphase outputs): measured at 256x256 paper256 sizes,
 * where 8 images per pass run and 16 abort.
 */
const PEAK_MAPS_PER_IMAGE = 8;

/**
 * How many of `requested` images one synthesis pass may hold on the active backend: all of them,
 * except on wasm, where the pass must stay inside its heap.
 */
export function imagesPerPass(cfg: GeneratorConfig, requested: number, backend = tf.getBackend()): number {
  if (backend !== 'wasm') return requested;
  const largestMap = Math.max(
    ...synthesisResolutions(cfg.resolution).map(
      (res) => res * res * Math.max(channelsAt(cfg, res), channelsAt(cfg, Math.max(4, res / 2))),
    ),
  );
  const perImage = largestMap * 4 * PEAK_MAPS_PER_IMAGE;
  return Math.max(1, Math.min(requested, Math.floor(WASM_PASS_BUDGET_BYTES / perImage)));
}

export interface GenerateBatchOptions extends GenerateOptions {
  batchSize?: number;
  /** Seeds are noise seeds of variations of this face, not faces of their own. */
  variation?: Variation;
  onProgress?: (done: number, total: number) => void;
}

export function seedsToZ(seeds: number[], zDim: number, variation?: Variation): tf.Tensor2D {
  const data = new Float32Array(seeds.length * zDim);
  for (const [i, seed] of seeds.entries())
    data.set(variation ? variationZ(variation, seed, zDim) : zFromSeed(seed, zDim), i * zDim);
  return tf.tensor2d(data, [seeds.length, zDim]);
}

/**
 * Generates one image per seed, `batchSize` at a time (fewer where the backend's memory needs it). Calls `consume` with each batch's NHWC
 * images (raw, roughly [-1, 1]) and disposes them afterwards, so memory stays bounded by a batch.
 */
export async function generateFromSeeds(
  G: Generator,
  seeds: number[],
  consume: (images: tf.Tensor4D, seeds: number[]) => Promise<void>,
  opts: GenerateBatchOptions = {},
): Promise<void> {
  const { onProgress, variation, ...genOpts } = opts;
  const batchSize = imagesPerPass(G.cfg, opts.batchSize ?? 8);
  for (let start = 0; start < seeds.length; start += batchSize) {
    const batchSeeds = seeds.slice(start, start + batchSize);
    const images = tf.tidy(() =>
      G.generate(seedsToZ(batchSeeds, G.cfg.zDim, variation), { noiseMode: 'const', ...genOpts }),
    );
    try {
      await consume(images, batchSeeds);
    } finally {
      images.dispose();
    }
    onProgress?.(Math.min(start + batchSize, seeds.length), seeds.length);
  }
}
