// Training hyperparameters: the official stylegan2-ada-pytorch `auto` choices where the caller
// leaves them open (train.py's cfg_specs['auto'] and training_loop.py defaults), and their checks.
import { UserError } from '../../errors.ts';
import type { DiscriminatorConfig } from '../config.ts';
import type { AugmentPreset } from './augment.ts';
import { autoR1Gamma } from './loss.ts';

/** 'ada': p adapts; a number: fixed p; 'off': no augmentation. */
export type AugmentMode = 'ada' | 'off' | { fixedP: number };

export interface TrainHyperparameters {
  /** Images per minibatch (official --batch). */
  batchSize: number;
  /** Images per forward/backward round; the minibatch is accumulated over batchSize / batchGpu rounds. */
  batchGpu: number;
  glr: number;
  dlr: number;
  /** R1 weight; 0 disables R1. */
  r1Gamma: number;
  r1Interval: number;
  /** Path-length weight; 0 disables it. */
  plWeight: number;
  plInterval: number;
  plBatchShrink: number;
  plDecay: number;
  styleMixing: number;
  /** G EMA half-life in thousands of images. */
  emaKimg: number;
  /** EMA half-life at most this fraction of the images seen (null: no rampup). */
  emaRampup: number | null;
  /** Freeze-D: the first (highest-resolution) k discriminator blocks are not trained. */
  freezeD: number;
  /** Train on x-flipped copies too (an epoch then covers both). */
  mirror: boolean;
  augment: AugmentMode;
  augmentPreset: AugmentPreset;
  adaTarget: number;
  adaKimg: number;
  adaInterval: number;
}

/** `auto` batch (train.py): 4096 // resolution images, at most 32. */
const AUTO_BATCH_PIXELS = 4096;
const AUTO_BATCH_MAX = 32;
/** `auto` G EMA: 10 kimg at the reference batch of 32, scaled with the batch. */
const EMA_KIMG_PER_REFERENCE_BATCH = 10;
const EMA_REFERENCE_BATCH = 32;

/** The official `auto` G EMA half-life for a minibatch size. */
export function autoEmaKimg(batchSize: number): number {
  return (batchSize * EMA_KIMG_PER_REFERENCE_BATCH) / EMA_REFERENCE_BATCH;
}

/** The official `auto` choices where the caller leaves them open. */
export function defaultHyperparameters(
  resolution: number,
  itemsPerEpoch: number,
  mbstdGroupSize = 4,
): TrainHyperparameters {
  // A whole number of minibatch-std groups, and no larger than an epoch.
  let batchSize = Math.max(
    1,
    Math.min(Math.floor(AUTO_BATCH_PIXELS / resolution), AUTO_BATCH_MAX, itemsPerEpoch),
  );
  if (batchSize >= mbstdGroupSize) batchSize -= batchSize % mbstdGroupSize;
  return {
    batchSize,
    batchGpu: batchSize,
    glr: 0.0025,
    dlr: 0.0025,
    r1Gamma: autoR1Gamma(resolution, batchSize),
    r1Interval: 16,
    plWeight: 2,
    plInterval: 4,
    plBatchShrink: 2,
    plDecay: 0.01,
    styleMixing: 0.9,
    emaKimg: autoEmaKimg(batchSize),
    emaRampup: 0.05,
    freezeD: 0,
    mirror: true,
    augment: 'ada',
    augmentPreset: 'bgc',
    adaTarget: 0.6,
    adaKimg: 500,
    adaInterval: 4,
  };
}

/**
 * The caller's choices over the defaults; a batch size given without batch-gpu, gamma or EMA
 * also moves those, as the official `auto` config derives them from the batch.
 */
export function resolveHyperparameters(
  resolution: number,
  itemsPerEpoch: number,
  D: DiscriminatorConfig,
  given: Partial<TrainHyperparameters> = {},
): TrainHyperparameters {
  const hyper: TrainHyperparameters = {
    ...defaultHyperparameters(resolution, itemsPerEpoch, D.mbstdGroupSize),
    ...given,
  };
  if (given.batchSize && !given.batchGpu) hyper.batchGpu = hyper.batchSize;
  if (given.batchSize && given.r1Gamma === undefined)
    hyper.r1Gamma = autoR1Gamma(resolution, hyper.batchSize);
  if (given.batchSize && given.emaKimg === undefined) hyper.emaKimg = autoEmaKimg(hyper.batchSize);
  checkHyperparameters(hyper, D);
  return hyper;
}

function checkHyperparameters(h: TrainHyperparameters, D: DiscriminatorConfig): void {
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  const problems: string[] = [];
  if (!positiveInt(h.batchSize) || !positiveInt(h.batchGpu) || h.batchSize % h.batchGpu !== 0)
    problems.push(`batch ${h.batchSize} must be a positive multiple of batch-gpu ${h.batchGpu}`);
  const group = Math.min(D.mbstdGroupSize, h.batchGpu);
  if (h.batchGpu % group !== 0)
    problems.push(`batch-gpu ${h.batchGpu} must be a multiple of the minibatch-std group ${group}`);
  if (!(h.glr > 0 && h.dlr > 0)) problems.push('learning rates must be > 0');
  if (!(h.r1Gamma >= 0 && h.plWeight >= 0)) problems.push('gamma and pl-weight must be >= 0');
  if (!positiveInt(h.r1Interval) || !positiveInt(h.plInterval) || !positiveInt(h.plBatchShrink))
    problems.push('regularisation intervals and pl batch shrink must be positive integers');
  if (!(h.styleMixing >= 0 && h.styleMixing <= 1)) problems.push('style mixing must be in [0, 1]');
  if (!(h.emaKimg >= 0)) problems.push('ema-kimg must be >= 0');
  if (!(Number.isInteger(h.freezeD) && h.freezeD >= 0)) problems.push('freezed must be an integer >= 0');
  if (typeof h.augment === 'object' && !(h.augment.fixedP >= 0 && h.augment.fixedP <= 1))
    problems.push('a fixed augment p must be in [0, 1]');
  if (problems.length) throw new UserError(`bad training options: ${problems.join('; ')}`);
}
