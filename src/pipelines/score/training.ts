// Scores the snapshots of a fine-tune against its own training set, within a time budget: the
// sample count is the configured one, cut so that rendering and featurising one snapshot's images
// stays under `budget` (default 10%) of an epoch's training time on the worker's backend. The count
// is fixed at the first snapshot, so every snapshot of a run is scored the same way; the training
// set's features are computed once per run.
import type { RgbImage } from '../../images/tensor-image.ts';
import { logger } from '../../log.ts';
import type { ModelScore } from '../../model/checkpoint/format.ts';
import type { Generator } from '../../model/networks/generator.ts';
import type { TrainingSet } from '../../model/train/data.ts';
import { DEFAULT_FEATURE_NETWORK, type FeatureExtractor, sharedFeatureExtractor } from './features.ts';
import { type FeatureMatrix, kernelInceptionDistance } from './kid.ts';
import { pickIndices, renderImages } from './sources.ts';

const log = logger('score');

export interface SnapshotScoring {
  /** Images per side at most (0 turns scoring off). */
  samples: number;
  /** Fraction of an epoch's training time one snapshot's scoring may take. */
  budget: number;
  /** Below this many images a score says too little: the snapshot is left unscored. */
  minSamples: number;
  network: string;
  /** Seeds rendered (seed, seed + 1, ...) and the seed of the subset sampling. */
  seed: number;
}

export const DEFAULT_SNAPSHOT_SCORING: SnapshotScoring = {
  samples: 256,
  budget: 0.1,
  minSamples: 32,
  network: DEFAULT_FEATURE_NETWORK,
  seed: 0,
};

/** Images measured to estimate the seconds per scored image before the first snapshot. */
const PROBE_IMAGES = 8;

function trainingImage(data: TrainingSet, index: number): RgbImage {
  const perImage = data.resolution * data.resolution * 3;
  return {
    width: data.resolution,
    height: data.resolution,
    data: Buffer.from(data.pixels.buffer, data.pixels.byteOffset + index * perImage, perImage),
  };
}

export interface SnapshotScoreOutcome {
  score: ModelScore | null;
  /** Why there is no score, when there is none. */
  skipped?: string;
  seconds: number;
}

export class TrainingSetScorer {
  private readonly options: SnapshotScoring;
  private extractor: FeatureExtractor | null = null;
  private secondsPerImage: number | null = null;
  private count: number | null = null;
  private realFeatures: FeatureMatrix | null = null;

  constructor(
    private readonly data: TrainingSet,
    options: Partial<SnapshotScoring> = {},
  ) {
    const given = Object.entries(options).filter(([, v]) => v !== undefined);
    this.options = { ...DEFAULT_SNAPSHOT_SCORING, ...Object.fromEntries(given) };
  }

  get metric(): string | null {
    return this.extractor?.network.scoreName ?? null;
  }

  /** Images per side this run scores with, given an epoch's training seconds. */
  private async sampleCount(secondsPerEpoch: number): Promise<number> {
    if (this.count !== null) return this.count;
    this.extractor ??= await sharedFeatureExtractor(this.options.network);
    if (this.secondsPerImage === null) {
      const probe = Array.from({ length: Math.min(PROBE_IMAGES, this.data.count) }, (_, i) =>
        trainingImage(this.data, i),
      );
      const started = performance.now();
      await this.extractor.features(probe);
      // Rendering the fakes costs about as much again as featurising them at small sizes; the
      // margin keeps the first estimate on the safe side, later snapshots use measured times.
      this.secondsPerImage = (1.25 * (performance.now() - started)) / 1000 / probe.length;
    }
    const affordable = Math.floor((this.options.budget * secondsPerEpoch) / this.secondsPerImage);
    return Math.min(this.options.samples, this.data.count, affordable);
  }

  /** KID of G's images against the training set, or why it was not computed. */
  async score(G: Generator, secondsPerEpoch: number): Promise<SnapshotScoreOutcome> {
    const started = performance.now();
    const done = (outcome: Omit<SnapshotScoreOutcome, 'seconds'>) => ({
      ...outcome,
      seconds: (performance.now() - started) / 1000,
    });
    if (this.options.samples <= 0) return done({ score: null, skipped: 'scoring is off' });
    if (Math.min(this.options.samples, this.data.count) < this.options.minSamples) {
      // Decided before the network is even loaded: a tiny set costs nothing.
      return done({
        score: null,
        skipped: `fewer than ${this.options.minSamples} images to score with (${Math.min(this.options.samples, this.data.count)})`,
      });
    }
    const count = await this.sampleCount(secondsPerEpoch);
    if (count < this.options.minSamples) {
      const skipped = `an epoch (${secondsPerEpoch.toFixed(1)} s) is too short to score ${this.options.minSamples} images within ${Math.round(this.options.budget * 100)}% of it`;
      log.info('snapshot not scored', { reason: skipped });
      return done({ score: null, skipped });
    }
    this.count = count;
    const extractor = this.extractor!;
    if (!this.realFeatures) {
      const indices = pickIndices(this.data.count, count, this.options.seed);
      this.realFeatures = await extractor.features(indices.map((i) => trainingImage(this.data, i)));
    }
    const fakeStarted = performance.now();
    const fake = await renderImages(G, { count, seed: this.options.seed, psi: 1 });
    const fakeFeatures = await extractor.features(fake);
    this.secondsPerImage = (performance.now() - fakeStarted) / 1000 / count;
    const result = kernelInceptionDistance(this.realFeatures, fakeFeatures, { seed: this.options.seed });
    return done({
      score: {
        metric: extractor.network.scoreName,
        against: this.data.id,
        kid: result.kid,
        kidStd: result.kidStd,
        numReal: count,
        numFake: count,
        psi: 1,
      },
    });
  }
}
