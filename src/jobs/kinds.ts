// The kinds of work the GPU worker does: each kind's payload and result types, and the rules the
// queue applies to it (lane, priority, time limit, attempts, batching, ETA units). Payloads and
// results cross process boundaries and are stored, so they are plain JSON.
import { UserError } from '../errors.ts';

/** Short jobs and fine-tunes never wait for each other: each lane runs on its own. */
export type Lane = 'short' | 'long';
export const LANES: readonly Lane[] = ['short', 'long'];

export type NoiseMode = 'const' | 'random' | 'none';

export interface GeneratePayload {
  /** Model name or checkpoint path, resolved by the worker. */
  checkpoint: string;
  seeds: number[];
  /** Truncation psi (1 = none). */
  psi: number;
  noiseMode?: NoiseMode;
  /** Also lay the images out as one grid image. */
  grid?: boolean;
}
export interface GenerateResult {
  imagePaths: string[];
  gridPath?: string;
}

export interface BlendPayload {
  /** The model that keeps the coarse layers (pose, shape). */
  base: string;
  /** The fine-tuned model that gives the fine layers (texture, colour). */
  style: string;
  /** Resolution at which the blend switches from base to style. */
  layer: number;
  /** Width of a smooth transition in layers; 0 swaps sharply. */
  width?: number;
  /** texture: base shapes, style colours and lines; structure: style shapes, base textures. */
  direction?: 'texture' | 'structure';
  seeds: number[];
  psi: number;
  /** Also render the matrix of every swap layer. */
  matrix?: boolean;
}
export interface BlendResult {
  /** base | style | blend, one row per seed. */
  gridPath: string;
  matrixPath?: string;
  /** The blended generator, saved so it can be used as a model. */
  checkpointPath?: string;
}

export interface FinetunePayload {
  datasetDir: string;
  /** Model the fine-tune starts from. */
  base: string;
  epochs: number;
  /** Save a snapshot (and a preview grid) every this many epochs. */
  snapshotEvery: number;
  /** Folder that receives the snapshots; it outlives the job's artifacts. */
  runDir: string;
  batchSize?: number;
  learningRate?: number;
  /** Images a side for each snapshot's score against the training set (0: off; default 256). */
  scoreSamples?: number;
}
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
/** Where an interrupted fine-tune continues: its last snapshot. */
export interface FinetuneResume {
  epoch: number;
  checkpointPath: string;
  snapshots: FinetuneSnapshot[];
}

export interface ToonifyPayload {
  /**
   * The member's photo, already on disk. Used for this job only: deleted when it ends if the bot
   * saved it (see src/store/toonify-photos.ts), only read otherwise.
   */
  photoPath: string;
  /** Model the photo is projected into; default: the one the blend or style was made from. */
  base?: string;
  /** A saved blend model. Either this or `style` with `layer`. */
  blend?: string;
  /** A fine-tuned model (its newest snapshot, or a checkpoint path), swapped in at `layer`. */
  style?: string;
  /** With `style`: resolution from which the style's layers are used. */
  layer?: number;
  /** With `style`: soft switch width in octaves (0: hard cut). */
  width?: number;
  /** With `style`: texture (default) keeps the base's shapes; structure the style's. */
  direction?: 'texture' | 'structure';
  /** Which face when the photo shows several: 'largest', or 0 (largest) onwards. */
  face?: 'largest' | number;
  /** Projection steps (default TOONIFY_DEFAULT_STEPS). */
  steps?: number;
  /** Peak learning rate of the projection (default 0.1). */
  learningRate?: number;
  /** Weight of the pixel loss (default 1). */
  pixelWeight?: number;
  /** Weight of the discriminator-feature loss (default 1; 0: pixels only). */
  perceptualWeight?: number;
}
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

/** Enough for a recognisable reconstruction, short enough for a chat job. */
export const TOONIFY_DEFAULT_STEPS = 300;
/** The official projector's own step count: more buys little and holds the short lane. */
export const TOONIFY_MAX_STEPS = 1000;
const TOONIFY_MAX_FACE = 99;

/** Does nothing for `durationMs` in `steps` progress reports: measures the queue itself. */
export interface NoopPayload {
  durationMs?: number;
  steps?: number;
}
export interface NoopResult {
  steps: number;
  /** The worker process that ran it. */
  pid: number;
}

/** The types of one kind: what the handler receives, returns and may save to resume. */
export interface KindTypes {
  payload: unknown;
  result: unknown;
  resume?: unknown;
}
export type KindMap = { [kind: string]: KindTypes };

/** Every kind the production worker runs. A type (not an interface) so it fits `KindMap`. */
export type JobKinds = {
  generate: { payload: GeneratePayload; result: GenerateResult };
  blend: { payload: BlendPayload; result: BlendResult };
  finetune: { payload: FinetunePayload; result: FinetuneResult; resume: FinetuneResume };
  toonify: { payload: ToonifyPayload; result: ToonifyResult };
  noop: { payload: NoopPayload; result: NoopResult };
};

export type KindOf<KM extends KindMap> = keyof KM & string;
export type JobKind = KindOf<JobKinds>;
export type PayloadOf<KM extends KindMap, K extends KindOf<KM>> = KM[K]['payload'];
export type ResultOf<KM extends KindMap, K extends KindOf<KM>> = KM[K]['result'];
export type ResumeOf<KM extends KindMap, K extends KindOf<KM>> = KM[K] extends { resume: infer R }
  ? R
  : never;

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

function record(payload: unknown, kind: string): Record<string, unknown> {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new UserError(`a ${kind} job needs an object payload`);
  }
  return payload as Record<string, unknown>;
}

function text(obj: Record<string, unknown>, key: string, kind: string): string {
  const value = obj[key];
  if (typeof value !== 'string' || value.length === 0)
    throw new UserError(`${kind}: "${key}" must be a non-empty string`);
  return value;
}

function integer(obj: Record<string, unknown>, key: string, kind: string, min: number, max: number): number {
  const value = obj[key];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new UserError(
      `${kind}: "${key}" must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function optionalInteger(
  obj: Record<string, unknown>,
  key: string,
  kind: string,
  min: number,
  max: number,
): void {
  if (obj[key] !== undefined) integer(obj, key, kind, min, max);
}

function finite(obj: Record<string, unknown>, key: string, kind: string, min: number, max: number): number {
  const value = obj[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new UserError(
      `${kind}: "${key}" must be a number from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

const MAX_SEEDS = 64;
const MAX_SEED = 2 ** 32 - 1;

function seeds(obj: Record<string, unknown>, kind: string): number[] {
  const value = obj.seeds;
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_SEEDS) {
    throw new UserError(`${kind}: "seeds" must be a list of 1 to ${MAX_SEEDS} seeds`);
  }
  for (const seed of value) {
    if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
      throw new UserError(
        `${kind}: every seed must be an integer from 0 to ${MAX_SEED}, got ${JSON.stringify(seed)}`,
      );
    }
  }
  return value;
}

export const KIND_SPECS: KindSpecs<JobKinds> = {
  generate: {
    lane: 'short',
    priority: 10,
    timeLimitMs: 5 * MINUTE,
    maxAttempts: 2,
    units: (p) => p.seeds.length,
    defaultSecondsPerUnit: 2,
    // Only the model and the truncation change the forward pass; seeds are per sample.
    batchKey: (p) => JSON.stringify([p.checkpoint, p.psi, p.noiseMode ?? 'const']),
    validate(payload) {
      const p = record(payload, 'generate');
      text(p, 'checkpoint', 'generate');
      seeds(p, 'generate');
      finite(p, 'psi', 'generate', -2, 2);
      if (p.noiseMode !== undefined && !['const', 'random', 'none'].includes(p.noiseMode as string)) {
        throw new UserError(`generate: "noiseMode" must be const, random or none`);
      }
      return p as unknown as GeneratePayload;
    },
  },
  blend: {
    lane: 'short',
    priority: 20,
    timeLimitMs: 10 * MINUTE,
    maxAttempts: 2,
    units: (p) => p.seeds.length * (p.matrix ? 4 : 1),
    defaultSecondsPerUnit: 4,
    validate(payload) {
      const p = record(payload, 'blend');
      text(p, 'base', 'blend');
      text(p, 'style', 'blend');
      integer(p, 'layer', 'blend', 4, 1024);
      optionalInteger(p, 'width', 'blend', 0, 16);
      seeds(p, 'blend');
      finite(p, 'psi', 'blend', -2, 2);
      return p as unknown as BlendPayload;
    },
  },
  finetune: {
    lane: 'long',
    priority: 10,
    timeLimitMs: 12 * 60 * MINUTE,
    maxAttempts: 3,
    units: (p) => p.epochs,
    defaultSecondsPerUnit: 120,
    validate(payload) {
      const p = record(payload, 'finetune');
      text(p, 'datasetDir', 'finetune');
      text(p, 'base', 'finetune');
      text(p, 'runDir', 'finetune');
      const epochs = integer(p, 'epochs', 'finetune', 1, 10_000);
      integer(p, 'snapshotEvery', 'finetune', 1, epochs);
      optionalInteger(p, 'batchSize', 'finetune', 1, 256);
      optionalInteger(p, 'scoreSamples', 'finetune', 0, 10_000);
      if (p.learningRate !== undefined) finite(p, 'learningRate', 'finetune', 1e-8, 1);
      return p as unknown as FinetunePayload;
    },
  },
  toonify: {
    lane: 'short',
    priority: 20,
    timeLimitMs: 10 * MINUTE,
    maxAttempts: 2,
    units: (p) => p.steps ?? TOONIFY_DEFAULT_STEPS,
    defaultSecondsPerUnit: 0.1,
    validate(payload) {
      const p = record(payload, 'toonify');
      text(p, 'photoPath', 'toonify');
      if (p.base !== undefined) text(p, 'base', 'toonify');
      if ((p.blend === undefined) === (p.style === undefined))
        throw new UserError('toonify: give either "blend" (a saved blend) or "style" with "layer"');
      if (p.blend !== undefined) {
        text(p, 'blend', 'toonify');
        for (const key of ['layer', 'width', 'direction'])
          if (p[key] !== undefined)
            throw new UserError(`toonify: "${key}" goes with "style"; a saved blend has its own`);
      } else {
        text(p, 'style', 'toonify');
        integer(p, 'layer', 'toonify', 4, 1024);
        optionalInteger(p, 'width', 'toonify', 0, 16);
        if (p.direction !== undefined && !['texture', 'structure'].includes(p.direction as string))
          throw new UserError('toonify: "direction" must be texture or structure');
      }
      if (p.face !== undefined && p.face !== 'largest') integer(p, 'face', 'toonify', 0, TOONIFY_MAX_FACE);
      optionalInteger(p, 'steps', 'toonify', 1, TOONIFY_MAX_STEPS);
      if (p.learningRate !== undefined) finite(p, 'learningRate', 'toonify', 1e-4, 1);
      if (p.pixelWeight !== undefined) finite(p, 'pixelWeight', 'toonify', 0, 100);
      if (p.perceptualWeight !== undefined) finite(p, 'perceptualWeight', 'toonify', 0, 100);
      if (p.pixelWeight === 0 && p.perceptualWeight === 0)
        throw new UserError(
          'toonify: "pixelWeight" and "perceptualWeight" cannot both be 0: nothing would be fitted',
        );
      return p as unknown as ToonifyPayload;
    },
  },
  noop: {
    lane: 'short',
    priority: 10,
    timeLimitMs: MINUTE,
    maxAttempts: 2,
    units: () => 1,
    defaultSecondsPerUnit: 0.05,
    validate(payload) {
      const p = record(payload ?? {}, 'noop');
      optionalInteger(p, 'durationMs', 'noop', 0, 10 * MINUTE);
      optionalInteger(p, 'steps', 'noop', 1, 10_000);
      return p as NoopPayload;
    },
  },
};
