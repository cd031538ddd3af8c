// Toonify: a member's photo in a community style. The face is found and FFHQ-aligned exactly as
// the dataset pipeline does it, projected into the base model's latent space, and that latent is
// rendered by the blended generator (base and style layer-swapped). The photo is only read: every
// copy made of it (the aligned crop, previews of its reconstruction) lives in a temporary folder
// that is deleted when the job ends, unless `keepIntermediates` asks otherwise.
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { DEFAULT_LIMITS } from '../datasets/limits.ts';
import { type Prepared, prepareImage } from '../datasets/prepare.ts';
import type { FaceInfo } from '../datasets/types.ts';
import { UserError } from '../errors.ts';
import {
  encodeUnderLimit,
  hstack,
  type RgbImage,
  renderGrid,
  tensorToRgb,
  writeImage,
} from '../images/index.ts';
import { logger } from '../log.ts';
import { initBackend } from '../model/backend.ts';
import {
  type Checkpoint,
  disposeCheckpoint,
  generatorParams,
  loadCheckpoint,
  loadImageGenerator,
  readCheckpointInfo,
} from '../model/checkpoint/io.ts';
import { Discriminator } from '../model/networks/discriminator.ts';
import { Generator } from '../model/networks/generator.ts';
import type { ParamStore } from '../model/params.ts';
import { tf } from '../model/tf.ts';
import { assertSameArchitecture, type BlendDirection, blend, orderForDirection } from './blend.ts';
import {
  type Projection,
  ProjectionCancelledError,
  type ProjectionProgress,
  type ProjectOptions,
  project,
  withNoise,
} from './projection.ts';

const log = logger('toonify');

/** A style model and how to swap it into the base, for when no saved blend is given. */
export interface StyleSwap {
  style: string;
  /** Swap resolution: synthesis blocks at resolution >= layer come from the high model. */
  layer: number;
  /** Soft switch width in octaves (0: hard cut). */
  width?: number;
  /** Default 'texture', as `facestyle blend`. */
  direction?: BlendDirection;
}

/** Which face of a photo with several: 'largest', or an index in order of size (0 = largest). */
export type FaceChoice = 'largest' | number;

export type ToonifyStage = 'aligning' | 'loading' | 'projecting' | 'rendering';

export interface ToonifyProgress {
  stage: ToonifyStage;
  /** 0..1 over the whole job (projection dominates it). */
  fraction: number;
  projection?: Omit<ProjectionProgress, 'preview'>;
  /** target | current reconstruction, rewritten every `previewEvery` projection steps. */
  previewPath?: string;
}

export interface ToonifyOptions
  extends Pick<
    ProjectOptions,
    | 'steps'
    | 'learningRate'
    | 'pixelWeight'
    | 'optimizeNoise'
    | 'noiseRegularizeWeight'
    | 'wPlus'
    | 'seed'
    | 'previewEvery'
    | 'signal'
  > {
  photoPath: string;
  /** The model the photo is projected into: it needs its discriminator for the perceptual loss. */
  baseCheckpoint: string;
  /** A saved blend of the base (its file), or a style model and the swap to make now. */
  blend: string | StyleSwap;
  /** Folder for the results; created if missing. */
  outDir: string;
  /** Required when the photo shows several faces. */
  face?: FaceChoice;
  /** Weight of the discriminator-feature distance (0: pixels only). Default 1. */
  perceptualWeight?: number;
  /**
   * Smallest accepted face: side of its FFHQ crop in photo pixels, as a fraction of the model
   * resolution. Default 0.25 (up to 4x upscaling: a reconstruction hides the blur anyway).
   */
  minFaceSize?: number;
  /** Keep the aligned crop and previews (in `intermediatesDir`) instead of deleting them. */
  keepIntermediates?: boolean;
  /**
   * Where the preview (aligned photo | current reconstruction) is written every `previewEvery`
   * steps. Default: inside the temporary folder. Deleted at the end like it, unless `keepIntermediates`.
   */
  previewPath?: string;
  /** Parent of the temporary folder. Default: the OS temporary folder. */
  tempDir?: string;
  /**
   * Backend for the projection, selected for the whole process. Default: the active one. Face
   * detection runs in a thread of its own on wasm, whatever this is.
   */
  backend?: string;
  onProgress?: (progress: ToonifyProgress) => void | Promise<void>;
}

export interface ToonifyResult {
  /** original | reconstruction | stylised, labelled. */
  gridPath: string;
  originalPath: string;
  reconstructionPath: string;
  stylisedPath: string;
  /** Where the aligned crop and previews were kept, or null when they were deleted. */
  intermediatesDir: string | null;
  face: FaceInfo;
  metrics: {
    /** Reconstruction vs the aligned photo, 8-bit pixels, dB. */
    psnr: number;
    finalLoss: number;
    steps: number;
    projectionSeconds: number;
    stepsPerSecond: number;
    backend: string;
  };
}

const FACE_MIN_SCORE = 0.5;
const GRID_TILE_MIN = 256;
const GRID_TILE_MAX = 1024;
/** Rough share of a job's time before the projection (alignment, loading) and after it. */
const SETUP_SHARE = 0.05;
const RENDER_SHARE = 0.05;

export function parseFaceChoice(value: string): FaceChoice {
  const text = value.trim().toLowerCase();
  if (text === 'largest') return 'largest';
  if (/^\d+$/.test(text)) return Number(text);
  throw new UserError(`face must be "largest" or a face number (0 = largest), got "${value}"`);
}

function facesHint(count: number): string {
  return `choose one with --face largest or --face N, N from 0 (largest) to ${count - 1} (smallest)`;
}

/** Why a photo cannot be used, in words a member can act on. */
function rejection(prepared: Extract<Prepared, { reason: string }>): UserError {
  switch (prepared.status) {
    case 'no-face':
      return new UserError(
        'no face was found in the photo',
        'use a photo where one face is clearly visible, facing the camera and well lit',
      );
    case 'too-small':
      return new UserError(
        `the face is too small: ${prepared.reason}`,
        'use a larger photo, or one taken closer to the face',
      );
    case 'too-large':
      return new UserError(`the photo is too large: ${prepared.reason}`, 'send a smaller copy of it');
    default:
      return new UserError(`cannot use the photo: ${prepared.reason}`, 'send a JPEG, PNG or WebP photo');
  }
}

/** Pure choice among prepareImage's results (one per face, largest first, with `multipleFaces: 'all'`). */
export function chooseFace(
  results: Prepared[],
  choice: FaceChoice | undefined,
): Prepared & { face: FaceInfo } {
  const faces = results.filter((r): r is Prepared & { face: FaceInfo } => r.face !== undefined);
  if (faces.length === 0) {
    const first = results[0];
    if (!first || first.status === 'candidate') throw new UserError('no face was found in the photo');
    throw rejection(first);
  }
  const count = faces[0].face.count;
  let index: number;
  if (choice === undefined) {
    if (count > 1)
      throw new UserError(`the photo shows ${count} faces and none was chosen`, facesHint(count));
    index = 0;
  } else if (choice === 'largest') {
    index = 0;
  } else {
    if (!(Number.isInteger(choice) && choice >= 0 && choice < count))
      throw new UserError(
        `face ${choice} does not exist: the photo shows ${count} face${count > 1 ? 's' : ''}`,
        facesHint(count),
      );
    index = choice;
  }
  const chosen = faces[index];
  if (chosen.status !== 'candidate') throw rejection(chosen);
  return chosen;
}

async function readPhoto(path: string): Promise<Buffer> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new UserError(`${path} is not a file`);
    size = info.size;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read the photo ${path}: ${(err as Error).message}`);
  }
  const limit = DEFAULT_LIMITS.maxFileBytes;
  if (size > limit)
    throw new UserError(
      `the photo is ${(size / 2 ** 20).toFixed(1)} MiB, over the ${limit / 2 ** 20} MiB limit`,
      'send a smaller copy of it',
    );
  return readFile(path);
}

/** The aligned face and which face it is; runs the dataset pipeline's detection and FFHQ alignment. */
export async function alignPhoto(
  photoPath: string,
  resolution: number,
  opts: { face?: FaceChoice; minFaceSize?: number } = {},
): Promise<{ image: RgbImage; face: FaceInfo }> {
  const data = await readPhoto(photoPath);
  const results = await prepareImage(data, {
    resolution,
    align: 'faces',
    // Every face is aligned so that the choice, and the error listing them, see them all.
    multipleFaces: opts.face === 'largest' ? 'largest' : 'all',
    minFaceSize: opts.minFaceSize ?? 0.25,
    minFaceScore: FACE_MIN_SCORE,
    limits: DEFAULT_LIMITS,
  });
  const chosen = chooseFace(results, opts.face);
  if (chosen.status !== 'candidate') throw rejection(chosen);
  return { image: chosen.image, face: chosen.face };
}

/** Packed 8-bit RGB -> [1, H, W, 3] in [-1, 1] (pixel centres: the inverse of tensorToRgb). */
export function rgbToTensor(image: RgbImage): tf.Tensor4D {
  return tf.tidy(() =>
    tf.sub(tf.div(tf.tensor4d(Float32Array.from(image.data), [1, image.height, image.width, 3]), 127.5), 1),
  ) as tf.Tensor4D;
}

/** PSNR in dB between two 8-bit RGB images of one size. */
export function psnrRgb(a: RgbImage, b: RgbImage): number {
  if (a.width !== b.width || a.height !== b.height)
    throw new Error(`psnrRgb: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = a.data[i] - b.data[i];
    sum += d * d;
  }
  const mse = sum / a.data.length;
  return mse === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255) / mse);
}

interface LoadedModels {
  base: Checkpoint;
  G: Generator;
  D: Discriminator | null;
  blendParams: ParamStore;
  release(): void;
}

/**
 * A blend renders a projected latent faithfully only if it was made from the model the latent came
 * from; the architecture check cannot tell, so the recorded parents are compared (by file name, as
 * files move between machines).
 */
function warnIfBlendOfAnotherBase(base: Checkpoint, saved: Checkpoint): void {
  const parents = saved.meta.parents;
  if (saved.meta.kind !== 'blend' || !parents?.length) return;
  const baseFile = basename(base.path);
  if (!parents.some((parent) => basename(parent) === baseFile))
    log.warn('the blend was not made from this base model: the stylised face may not match the photo', {
      base: base.path,
      blendParents: parents,
    });
}

async function loadModels(baseCheckpoint: string, blendSpec: string | StyleSwap): Promise<LoadedModels> {
  const info = await readCheckpointInfo(baseCheckpoint);
  const generatorNetwork = info.networks.includes('G_ema') ? 'G_ema' : 'G';
  const base = await loadCheckpoint(baseCheckpoint, {
    networks: info.networks.includes('D') ? [generatorNetwork, 'D'] : [generatorNetwork],
  });
  const owned: tf.Tensor[] = [];
  let other: Checkpoint | undefined;
  try {
    const baseParams = generatorParams(base);
    let blendParams: ParamStore;
    if (typeof blendSpec === 'string') {
      other = await loadImageGenerator(blendSpec);
      blendParams = generatorParams(other);
      assertSameArchitecture(baseParams, blendParams, ['base', 'blend']);
      warnIfBlendOfAnotherBase(base, other);
    } else {
      other = await loadImageGenerator(blendSpec.style);
      const { low, high } = orderForDirection(
        baseParams,
        generatorParams(other),
        blendSpec.direction ?? 'texture',
      );
      const blended = blend(low, high, { layer: blendSpec.layer, width: blendSpec.width });
      owned.push(...blended.owned);
      blendParams = blended.params;
    }
    const G = new Generator(base.config.G, baseParams);
    const D = base.D && base.config.D ? new Discriminator(base.config.D, base.D) : null;
    const style = other;
    return {
      base,
      G,
      D,
      blendParams,
      release() {
        tf.dispose(owned);
        disposeCheckpoint(style);
        disposeCheckpoint(base);
      },
    };
  } catch (err) {
    tf.dispose(owned);
    if (other) disposeCheckpoint(other);
    disposeCheckpoint(base);
    throw err;
  }
}

function throwIfAborted(signal: AbortSignal | undefined, steps: number): void {
  if (signal?.aborted) throw new ProjectionCancelledError(0, steps);
}

async function writePng(path: string, image: RgbImage): Promise<string> {
  return writeImage(path, await encodeUnderLimit(image));
}

type Report = (progress: ToonifyProgress) => Promise<void>;

/** Projects the aligned face into the base model, writing a preview every `previewEvery` steps. */
async function projectFace(
  models: LoadedModels,
  aligned: RgbImage,
  opts: ToonifyOptions,
  previewPath: string,
  report: Report,
): Promise<Projection> {
  const perceptualWeight = opts.perceptualWeight ?? 1;
  if (!models.D && perceptualWeight > 0)
    log.warn('the base checkpoint has no discriminator: projecting with the pixel loss only', {
      base: opts.baseCheckpoint,
    });
  const target = rgbToTensor(aligned);
  try {
    return await project(models.G, target, {
      steps: opts.steps,
      learningRate: opts.learningRate,
      pixelWeight: opts.pixelWeight,
      optimizeNoise: opts.optimizeNoise,
      noiseRegularizeWeight: opts.noiseRegularizeWeight,
      wPlus: opts.wPlus,
      seed: opts.seed,
      previewEvery: opts.previewEvery,
      signal: opts.signal,
      perceptual:
        models.D && perceptualWeight > 0 ? { discriminator: models.D, weight: perceptualWeight } : null,
      onProgress: async ({ preview, ...progress }) => {
        let written: string | undefined;
        if (preview) {
          const [current] = await tensorToRgb(preview);
          written = await writePng(previewPath, await hstack([aligned, current]));
        }
        await report({
          stage: 'projecting',
          fraction: SETUP_SHARE + (1 - SETUP_SHARE - RENDER_SHARE) * (progress.step / progress.steps),
          projection: progress,
          previewPath: written,
        });
      },
    });
  } finally {
    target.dispose();
  }
}

/** The latent as the base model renders it (reconstruction) and as the blend does (stylised). */
async function renderLatent(
  models: LoadedModels,
  projection: Projection,
): Promise<{ reconstruction: RgbImage; stylised: RgbImage }> {
  const images = tf.tidy(() => {
    const render = (params: ParamStore) =>
      new Generator(models.G.cfg, withNoise(params, projection.noise)).synthesize(projection.ws, {
        noiseMode: 'const',
      });
    return tf.concat([render(models.G.params), render(models.blendParams)]);
  });
  try {
    const [reconstruction, stylised] = await tensorToRgb(images);
    return { reconstruction, stylised };
  } finally {
    images.dispose();
  }
}

/**
 * Aligns the face of `photoPath`, projects it into the base model, renders the latent with the
 * blend, and writes original | reconstruction | stylised (a grid and each image) into `outDir`.
 * Throws UserError for unusable photos and ProjectionCancelledError when `signal` aborts; the
 * temporary folder (and preview) are removed in every case unless `keepIntermediates`.
 */
export async function toonify(opts: ToonifyOptions): Promise<ToonifyResult> {
  const steps = opts.steps ?? 500;
  const report: Report = async (progress) => {
    await opts.onProgress?.(progress);
  };
  const resolution = (await readCheckpointInfo(opts.baseCheckpoint)).config.G.resolution;
  const outDir = resolve(opts.outDir);
  await mkdir(outDir, { recursive: true });
  const workDir = await mkdtemp(join(opts.tempDir ?? tmpdir(), 'facestyle-toonify-'));
  const previewPath = opts.previewPath ? resolve(opts.previewPath) : join(workDir, 'preview.png');
  try {
    throwIfAborted(opts.signal, steps);
    await report({ stage: 'aligning', fraction: 0 });
    const aligned = await alignPhoto(opts.photoPath, resolution, {
      face: opts.face,
      minFaceSize: opts.minFaceSize,
    });
    await writePng(join(workDir, 'aligned.png'), aligned.image);
    if (opts.backend) await initBackend(opts.backend);

    throwIfAborted(opts.signal, steps);
    await report({ stage: 'loading', fraction: SETUP_SHARE / 2 });
    const models = await loadModels(opts.baseCheckpoint, opts.blend);
    try {
      const projection = await projectFace(models, aligned.image, opts, previewPath, report);
      await report({ stage: 'rendering', fraction: 1 - RENDER_SHARE });
      let rendered: { reconstruction: RgbImage; stylised: RgbImage };
      try {
        rendered = await renderLatent(models, projection);
      } finally {
        tf.dispose([projection.ws, ...(projection.noise?.values() ?? [])]);
      }
      const { reconstruction, stylised } = rendered;
      const grid = await renderGrid({
        tiles: [aligned.image, reconstruction, stylised],
        columns: 3,
        tileLabels: ['original', 'reconstruction', 'stylised'],
        tileSize: Math.min(Math.max(resolution, GRID_TILE_MIN), GRID_TILE_MAX),
      });
      const result: ToonifyResult = {
        gridPath: await writePng(join(outDir, 'toonify.png'), grid),
        originalPath: await writePng(join(outDir, 'original.png'), aligned.image),
        reconstructionPath: await writePng(join(outDir, 'reconstruction.png'), reconstruction),
        stylisedPath: await writePng(join(outDir, 'stylised.png'), stylised),
        intermediatesDir: opts.keepIntermediates ? workDir : null,
        face: aligned.face,
        metrics: {
          psnr: psnrRgb(reconstruction, aligned.image),
          finalLoss: projection.losses.at(-1) ?? Number.NaN,
          steps: projection.steps,
          projectionSeconds: projection.seconds,
          stepsPerSecond: projection.steps / projection.seconds,
          backend: tf.getBackend(),
        },
      };
      await report({ stage: 'rendering', fraction: 1 });
      return result;
    } finally {
      models.release();
    }
  } finally {
    if (!opts.keepIntermediates) {
      await rm(workDir, { recursive: true, force: true });
      await rm(previewPath, { force: true });
    }
  }
}
