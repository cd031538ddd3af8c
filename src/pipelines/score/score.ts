// `facestyle score`: KID between a set of real images and a set of generated ones (a folder, or a
// checkpoint rendering seeds), on features of a network shipped in nsfwjs (see features.ts).

import { UserError } from '../../errors.ts';
import type { RgbImage } from '../../images/tensor-image.ts';
import { readCheckpointInfo } from '../../model/checkpoint/info.ts';
import { disposeCheckpoint, generatorParams } from '../../model/checkpoint/io.ts';
import { Generator } from '../../model/networks/generator.ts';
import { DIVERSITY_SAMPLES, meanPairwiseDistance } from './diversity.ts';
import { DEFAULT_FEATURE_NETWORK, featureNetwork, sharedFeatureExtractor } from './features.ts';
import { frechetDistance } from './fid.ts';
import { type FeatureMatrix, KID_DEFAULTS, kernelInceptionDistance } from './kid.ts';
import {
  countImages,
  identifySource,
  loadGeneratorCheckpoint,
  readImages,
  renderImages,
  type SourceSpec,
} from './sources.ts';

export const DEFAULT_SCORE_COUNT = 1000;

export interface ScoreRequest {
  real: string;
  fake: string;
  /** Images per side; default: 1000, or fewer when the real set is smaller. */
  num?: number;
  psi?: number;
  /** First seed rendered from a checkpoint, and the seed of every random choice. */
  seed?: number;
  network?: string;
  numSubsets?: number;
  maxSubsetSize?: number;
  /** Also compute FID on the same features. */
  fid?: boolean;
  onStage?: (stage: string) => void;
  /**
   * Real features kept across calls (one entry per real set, count, size, seed and network):
   * scoring several models against one set reads and featurises the set once.
   */
  realFeatureCache?: Map<string, FeatureMatrix>;
}

/** What `facestyle score --json` prints. */
export interface ScoreReport {
  /** The score's name, after its feature network: comparable only with itself. */
  metric: string;
  kid: number;
  kid_std: number;
  /** FID on the same features (not Inception FID), with --fid. */
  fid?: number;
  /**
   * Mean pairwise feature distance of the first `diversity_samples` images of each side (see
   * diversity.ts), and generated / real: below 1, the model shows less variety than its set.
   */
  diversity_fake: number;
  diversity_real: number;
  diversity_ratio: number;
  diversity_samples: number;
  num_real: number;
  num_fake: number;
  /** The feature network (id: description). */
  features: string;
  feature_dims: number;
  subset_size: number;
  num_subsets: number;
  seed: number;
  /** Truncation of a rendered fake side. */
  psi: number | null;
  /** Side the images were decoded or rendered at before the feature network's own resize. */
  resolution: number;
  real: SourceSpec;
  fake: SourceSpec;
  seconds: number;
}

function checkCount(num: number | undefined): void {
  if (num !== undefined && !(Number.isInteger(num) && num >= 2))
    throw new UserError(`--num must be a whole number of at least 2, got ${num}`);
}

/** Scores `req.fake` against `req.real` (see ScoreReport). */
export async function scoreSources(req: ScoreRequest): Promise<ScoreReport> {
  const started = performance.now();
  checkCount(req.num);
  const seed = req.seed ?? 0;
  const psi = req.psi ?? 1;
  const network = featureNetwork(req.network ?? DEFAULT_FEATURE_NETWORK);
  const real = await identifySource(req.real);
  if (real.kind === 'checkpoint') {
    throw new UserError(
      `--real must be images (a folder, a dataset or a zip), not a checkpoint: ${req.real}`,
    );
  }
  const fake = await identifySource(req.fake);
  if (fake.kind === 'zip')
    throw new UserError('--fake takes a folder of images or a generator checkpoint, not a zip');

  // Both sides at one resolution: a checkpoint's, so real images look as training saw them.
  let resolution = network.inputSize;
  if (fake.kind === 'checkpoint') {
    try {
      const info = await readCheckpointInfo(fake.path);
      if (!info.networks.includes('G_ema') && !info.networks.includes('G')) {
        throw new UserError(`it holds ${info.networks.join(', ') || 'no network'}, no G_ema or G`);
      }
      resolution = info.config.G.resolution;
    } catch (err) {
      if (err instanceof UserError) {
        throw new UserError(`${fake.path} is not a generator checkpoint: ${err.message}`, err.hint);
      }
      throw err;
    }
  }
  let num = req.num;
  if (num === undefined) {
    const available = Math.min(await countImages(real), await countImages(fake));
    num = Math.min(DEFAULT_SCORE_COUNT, available);
    if (num < 2) num = 2; // readImages reports the empty or one-image side
  }

  const extractor = await sharedFeatureExtractor(network.id);
  const cacheKey = `${real.path}|${num}|${resolution}|${seed}|${network.id}`;
  let realFeatures = req.realFeatureCache?.get(cacheKey);
  if (!realFeatures) {
    req.onStage?.(`reading ${num} real images`);
    const realImages = await readImages(real, { count: num, size: resolution, seed });
    req.onStage?.(`features of the real images (${network.id})`);
    realFeatures = await extractor.features(realImages);
    req.realFeatureCache?.set(cacheKey, realFeatures);
  }
  let fakeImages: RgbImage[];
  if (fake.kind === 'checkpoint') {
    req.onStage?.(`rendering ${num} images (seeds ${seed}-${seed + num - 1}, psi ${psi})`);
    const ckpt = await loadGeneratorCheckpoint(fake.path);
    try {
      fakeImages = await renderImages(new Generator(ckpt.config.G, generatorParams(ckpt)), {
        count: num,
        seed,
        psi,
      });
    } finally {
      disposeCheckpoint(ckpt);
    }
  } else {
    req.onStage?.(`reading ${num} generated images`);
    fakeImages = await readImages(fake, { count: num, size: resolution, seed: seed + 1 });
  }

  req.onStage?.(`features of the generated images (${network.id})`);
  const fakeFeatures = await extractor.features(fakeImages);
  const result = kernelInceptionDistance(realFeatures, fakeFeatures, {
    seed,
    numSubsets: req.numSubsets ?? KID_DEFAULTS.numSubsets,
    maxSubsetSize: req.maxSubsetSize ?? KID_DEFAULTS.maxSubsetSize,
  });
  if (req.fid) req.onStage?.('FID on the same features');
  const fid = req.fid ? frechetDistance(realFeatures, fakeFeatures) : undefined;
  const diversitySamples = Math.min(DIVERSITY_SAMPLES, realFeatures.count, fakeFeatures.count);
  const diversityFake = meanPairwiseDistance(fakeFeatures, diversitySamples);
  const diversityReal = meanPairwiseDistance(realFeatures, diversitySamples);
  return {
    metric: network.scoreName,
    kid: result.kid,
    kid_std: result.kidStd,
    ...(fid !== undefined ? { fid } : {}),
    diversity_fake: diversityFake,
    diversity_real: diversityReal,
    diversity_ratio: diversityFake / diversityReal,
    diversity_samples: diversitySamples,
    num_real: realFeatures.count,
    num_fake: fakeImages.length,
    features: `${network.id}: ${network.description}`,
    feature_dims: network.dims,
    subset_size: result.subsetSize,
    num_subsets: result.numSubsets,
    seed,
    psi: fake.kind === 'checkpoint' ? psi : null,
    resolution,
    real,
    fake,
    seconds: (performance.now() - started) / 1000,
  };
}
