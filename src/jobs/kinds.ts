// The kinds of work the GPU worker does: each kind's payload and result types, and the rules the
// queue applies to it (lane, priority, time limit, attempts, batching, ETA units). Payloads and
// results cross process boundaries and are stored, so they are plain JSON.
import { UserError } from '../errors.ts';
import { NOISE_MODES } from '../model/config.ts';
import {
  boolean,
  either,
  type Infer,
  integer,
  list,
  number,
  object,
  oneOf,
  optional,
  text,
} from './schema.ts';

/** Short jobs and fine-tunes never wait for each other: each lane runs on its own. */
export type Lane = 'short' | 'long';
export const LANES: readonly Lane[] = ['short', 'long'];

const noiseMode = oneOf(...NOISE_MODES);

const MAX_SEEDS = 64;
const MAX_SEED = 2 ** 32 - 1;
const seeds = list(integer(0, MAX_SEED), { min: 1, max: MAX_SEEDS });
/** Truncation psi (1 = none). */
const psi = number(-2, 2);
/** A resolution at which a swap happens: 4, 8 ... 1024 px. */
const swapLayer = integer(4, 1024);
/** Width of a smooth transition in layers (octaves); 0 swaps sharply. */
const swapWidth = integer(0, 16);
/** texture: base shapes, style colours and lines; structure: style shapes, base textures. */
const swapDirection = oneOf('texture', 'structure');
/** Nearby latents of face `of`: the seeds are noise seeds, `strength` how far they move. */
const variation = object({ of: integer(0, MAX_SEED), strength: number(0, 2) });

const generatePayload = object({
  /** Model name or checkpoint path, resolved by the worker. */
  checkpoint: text(),
  seeds,
  psi,
  noiseMode: optional(noiseMode),
  /** Also lay the images out as one grid image. */
  grid: optional(boolean()),
  /** The seeds are noise seeds of variations of face `of` (src/model/seeds.ts variationZ). */
  variation: optional(variation),
});
export type GeneratePayload = Infer<typeof generatePayload>;
export interface GenerateResult {
  imagePaths: string[];
  gridPath?: string;
}

const blendPayload = object({
  /** The model that keeps the coarse layers (pose, shape). */
  base: text(),
  /** The fine-tuned model that gives the fine layers (texture, colour). */
  style: text(),
  /** Resolution at which the blend switches from base to style. */
  layer: swapLayer,
  width: optional(swapWidth),
  direction: optional(swapDirection),
  seeds,
  psi,
  /** Also render the matrix of every swap layer. */
  matrix: optional(boolean()),
  /** The seeds are noise seeds of variations of face `of`. */
  variation: optional(variation),
});
export type BlendPayload = Infer<typeof blendPayload>;
export interface BlendResult {
  /** base | style | blend, one row per seed. */
  gridPath: string;
  matrixPath?: string;
  /** The blended generator, saved so it can be used as a model. */
  checkpointPath?: string;
}

const finetunePayload = object(
  {
    datasetDir: text(),
    /** Model the fine-tune starts from. */
    base: text(),
    epochs: integer(1, 10_000),
    /** Save a snapshot (and a preview grid) every this many epochs. */
    snapshotEvery: integer(1, 10_000),
    /** Folder that receives the snapshots; it outlives the job's artifacts. */
    runDir: text(),
    batchSize: optional(integer(1, 256)),
    learningRate: optional(number(1e-8, 1)),
    /** Images a side for each snapshot's score against the training set (0: off; default 256). */
    scoreSamples: optional(integer(0, 10_000)),
  },
  (p, where) => {
    if (p.snapshotEvery > p.epochs)
      throw new UserError(
        `${where}: "snapshotEvery" must be an integer from 1 to ${p.epochs} (the epochs), got ${p.snapshotEvery}`,
      );
  },
);
export type FinetunePayload = Infer<typeof finetunePayload>;
export interface FinetuneSnapshot {
  epoch: number;
  checkpointPath: string;
  previewPath?: string;
  /** KID against the training images (src/pipelines/score), when the snapshot was scored. */
  score?: { metric: string; kid: number; kidStd: number };
}
export interface FinetuneResult {
  snapshots: FinetuneSnapshot[];
  /** The best-scored snapshot's epoch, when any was scored. */
  bestEpoch?: number;
  /** Latest preview beside the loss and score curves. */
  progressImagePath?: string;
}

/** Enough for a recognisable reconstruction, short enough for a chat job. */
export const TOONIFY_DEFAULT_STEPS = 300;
/** The official projector's own step count: more buys little and holds the short lane. */
export const TOONIFY_MAX_STEPS = 1000;
const TOONIFY_MAX_FACE = 99;

const toonifyPayload = object(
  {
    /**
     * The member's photo, already on disk. Used for this job only: deleted when it ends if the bot
     * saved it (see src/store/toonify-photos.ts), only read otherwise.
     */
    photoPath: text(),
    /** Model the photo is projected into; default: the one the blend or style was made from. */
    base: optional(text()),
    /** A saved blend model. Either this or `style` with `layer`. */
    blend: optional(text()),
    /** A fine-tuned model (its newest snapshot, or a checkpoint path), swapped in at `layer`. */
    style: optional(text()),
    /** With `style`: resolution from which the style's layers are used. */
    layer: optional(swapLayer),
    /** With `style`: soft switch width in octaves (0: hard cut). */
    width: optional(swapWidth),
    /** With `style`: texture (default) keeps the base's shapes; structure the style's. */
    direction: optional(swapDirection),
    /** Which face when the photo shows several: 'largest', or 0 (largest) onwards. */
    face: optional(
      either(
        oneOf('largest'),
        integer(0, TOONIFY_MAX_FACE),
        `"largest" or an integer from 0 to ${TOONIFY_MAX_FACE}`,
      ),
    ),
    /** Projection steps (default TOONIFY_DEFAULT_STEPS). */
    steps: optional(integer(1, TOONIFY_MAX_STEPS)),
    /** Peak learning rate of the projection (default 0.1). */
    learningRate: optional(number(1e-4, 1)),
    /** Weight of the pixel loss (default 1). */
    pixelWeight: optional(number(0, 100)),
    /** Weight of the discriminator-feature loss (default 1; 0: pixels only). */
    perceptualWeight: optional(number(0, 100)),
  },
  (p, where) => {
    if ((p.blend === undefined) === (p.style === undefined))
      throw new UserError(`${where}: give either "blend" (a saved blend) or "style" with "layer"`);
    if (p.blend !== undefined) {
      for (const key of ['layer', 'width', 'direction'] as const)
        if (p[key] !== undefined)
          throw new UserError(`${where}: "${key}" goes with "style"; a saved blend has its own`);
    } else if (p.layer === undefined) {
      swapLayer.parse(undefined, `${where}: "layer"`);
    }
    if (p.pixelWeight === 0 && p.perceptualWeight === 0)
      throw new UserError(
        `${where}: "pixelWeight" and "perceptualWeight" cannot both be 0: nothing would be fitted`,
      );
  },
);
export type ToonifyPayload = Infer<typeof toonifyPayload>;
export interface ToonifyResult {
  /** original | reconstruction | stylised, labelled. */
  gridPath: string;
  /** The photo's face as the base model reconstructs it. */
  reconstructionPath: string;
  /** The stylised face alone: what votes and contests show (it holds no copy of the photo). */
  stylisedPath: string;
  /** Which face of how many was used. */
  face: { index: number; count: number };
  /** Reconstruction vs the aligned photo, dB. */
  psnr: number;
  steps: number;
  projectionSeconds: number;
  backend: string;
}

/**
 * dataset: an uploaded archive into a dataset folder for a fine-tune (src/datasets). On the long
 * lane because face detection runs TensorFlow.js, which never runs in the bot process.
 */
const datasetPayload = object({
  /** The archive, in the data folder the bot and the workers share. */
  archivePath: text(),
  /** Dataset folder to create. */
  outDir: text(),
  /** The base model's resolution. */
  resolution: integer(8, 1024),
  /** auto: aligned on a detected face where one is found, centre-cropped otherwise. */
  align: oneOf('auto', 'faces', 'center'),
  /** Fewer usable images fail the job. */
  minImages: integer(0, 100_000),
});
export type DatasetPayload = Infer<typeof datasetPayload>;
export interface DatasetResult {
  datasetDir: string;
  images: number;
  /** Entries not used (not an image, no face, duplicate...). */
  skipped: number;
  /** Kept images aligned on a detected face, and centre-cropped. */
  keptBy: { faces: number; center: number };
  /** "no face found: 2, duplicates: 1": why entries were not used, in words. */
  notUsed: string;
  contactSheet?: string;
}

/** Does nothing for `durationMs` in `steps` progress reports: measures the queue itself. */
const noopPayload = object({
  durationMs: optional(integer(0, 10 * 60_000)),
  steps: optional(integer(1, 10_000)),
});
export type NoopPayload = Infer<typeof noopPayload>;
export interface NoopResult {
  steps: number;
  /** The worker process that ran it. */
  pid: number;
}

/** The types of one kind: what the handler receives and returns. */
export interface KindTypes {
  payload: unknown;
  result: unknown;
}
export type KindMap = { [kind: string]: KindTypes };

/** Every kind the production worker runs. A type (not an interface) so it fits `KindMap`. */
export type JobKinds = {
  generate: { payload: GeneratePayload; result: GenerateResult };
  blend: { payload: BlendPayload; result: BlendResult };
  finetune: { payload: FinetunePayload; result: FinetuneResult };
  toonify: { payload: ToonifyPayload; result: ToonifyResult };
  dataset: { payload: DatasetPayload; result: DatasetResult };
  noop: { payload: NoopPayload; result: NoopResult };
};

export type KindOf<KM extends KindMap> = keyof KM & string;
export type JobKind = KindOf<JobKinds>;
export type PayloadOf<KM extends KindMap, K extends KindOf<KM>> = KM[K]['payload'];
export type ResultOf<KM extends KindMap, K extends KindOf<KM>> = KM[K]['result'];

export interface KindSpec<P = unknown> {
  lane: Lane;
  /** Lower runs first among the lane's queued jobs. */
  priority: number;
  timeLimitMs: number;
  /** Attempts when the worker dies under the job (kill, crash); errors the handler throws are final. */
  maxAttempts: number;
  /** Work units for ETAs (images, epochs); durations are averaged per unit. */
  units(payload: P): number;
  /** Seconds per unit until jobs of this kind have been measured. */
  defaultSecondsPerUnit: number;
  /** Jobs with equal keys can share one batch (one forward pass); absent: never batched. */
  batchKey?(payload: P): string;
  /** Checks a payload that came from outside; throws `UserError`. */
  validate(payload: unknown): P;
}
export type KindSpecs<KM extends KindMap> = { [K in KindOf<KM>]: KindSpec<PayloadOf<KM, K>> };

const MINUTE = 60_000;

export const KIND_SPECS: KindSpecs<JobKinds> = {
  generate: {
    lane: 'short',
    priority: 10,
    timeLimitMs: 5 * MINUTE,
    maxAttempts: 2,
    units: (p) => p.seeds.length,
    defaultSecondsPerUnit: 2,
    // Only the model and the truncation change the forward pass; seeds are per sample.
    batchKey: (p) => JSON.stringify([p.checkpoint, p.psi, p.noiseMode ?? 'const', p.variation ?? null]),
    validate: (payload) => generatePayload.parse(payload, 'generate'),
  },
  blend: {
    lane: 'short',
    priority: 20,
    timeLimitMs: 10 * MINUTE,
    maxAttempts: 2,
    units: (p) => p.seeds.length * (p.matrix ? 4 : 1),
    defaultSecondsPerUnit: 4,
    validate: (payload) => blendPayload.parse(payload, 'blend'),
  },
  finetune: {
    lane: 'long',
    priority: 10,
    timeLimitMs: 12 * 60 * MINUTE,
    maxAttempts: 3,
    units: (p) => p.epochs,
    defaultSecondsPerUnit: 120,
    validate: (payload) => finetunePayload.parse(payload, 'finetune'),
  },
  toonify: {
    lane: 'short',
    priority: 20,
    timeLimitMs: 10 * MINUTE,
    maxAttempts: 2,
    units: (p) => p.steps ?? TOONIFY_DEFAULT_STEPS,
    defaultSecondsPerUnit: 0.1,
    validate: (payload) => toonifyPayload.parse(payload, 'toonify'),
  },
  dataset: {
    lane: 'long',
    // Before fine-tunes: an admin is waiting for the contact sheet.
    priority: 5,
    timeLimitMs: 60 * MINUTE,
    maxAttempts: 2,
    units: () => 1,
    defaultSecondsPerUnit: 120,
    validate: (payload) => datasetPayload.parse(payload, 'dataset'),
  },
  noop: {
    lane: 'short',
    priority: 10,
    timeLimitMs: MINUTE,
    maxAttempts: 2,
    units: () => 1,
    defaultSecondsPerUnit: 0.05,
    validate: (payload) => noopPayload.parse(payload ?? {}, 'noop'),
  },
};
