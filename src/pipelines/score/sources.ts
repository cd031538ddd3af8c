// The image sets a score compares: a folder of images, a dataset built by `facestyle dataset
// build` (its images/ folder), a zip of images, or a generator checkpoint rendering seeds.
//
// Real images are decoded straight to the resolution they are compared at: the generator's when
// the other side is a checkpoint (as training sees them: TrainingSet's cover crop), else the
// feature network's input. The feature extractor then resizes both sides the same way.
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import sharp from 'sharp';
import { IMAGES_DIR } from '../../datasets/index.ts';
import { DEFAULT_LIMITS } from '../../datasets/limits.ts';
import { openZip } from '../../datasets/zip-source.ts';
import { UserError } from '../../errors.ts';
import { type RgbImage, tensorToRgb } from '../../images/tensor-image.ts';
import {
  type Checkpoint,
  disposeCheckpoint,
  generatorParams,
  loadImageGenerator,
} from '../../model/checkpoint/io.ts';
import { Generator } from '../../model/networks/generator.ts';
import { generateFromSeeds } from '../../model/sampling.ts';
import { NumpyRandomState } from '../../model/seeds.ts';
import { plural } from '../../text.ts';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);
// Transparent areas become white, as the dataset builder and the trainer do.
const WHITE = { r: 255, g: 255, b: 255 };

export type SourceKind = 'folder' | 'dataset' | 'zip' | 'checkpoint';

export interface SourceSpec {
  kind: SourceKind;
  path: string;
}

/** What `path` is: a checkpoint (.safetensors), a zip, a built dataset or a plain folder. */
export async function identifySource(path: string): Promise<SourceSpec> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new UserError(
      `cannot read ${path}: ${err.code === 'ENOENT' ? 'no such file or folder' : err.message}`,
    );
  });
  if (info.isDirectory()) {
    const images = join(path, IMAGES_DIR);
    const built = await stat(images).catch(() => null);
    return built?.isDirectory() ? { kind: 'dataset', path: images } : { kind: 'folder', path };
  }
  if (path.toLowerCase().endsWith('.safetensors')) return { kind: 'checkpoint', path };
  if (path.toLowerCase().endsWith('.zip')) return { kind: 'zip', path };
  throw new UserError(
    `${path} is not an image folder, a dataset, a .zip or a .safetensors checkpoint`,
    'give a folder of PNG/JPEG/WebP images, a dataset folder, a zip of images or a generator checkpoint',
  );
}

/** Decodes one image to `size` x `size` RGB (cover crop, EXIF rotation applied, alpha on white). */
export async function decodeImage(bytes: Buffer | string, size: number): Promise<RgbImage> {
  const { data, info } = await sharp(bytes)
    .rotate()
    .resize(size, size, { fit: 'cover' })
    .flatten({ background: WHITE })
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
  return { width: size, height: size, data };
}

/** `count` distinct indices of `0..total-1` in increasing order, seeded; all of them when equal. */
export function pickIndices(total: number, count: number, seed: number): number[] {
  if (count >= total) return Array.from({ length: total }, (_, i) => i);
  const rng = new NumpyRandomState(seed);
  const pool = Array.from({ length: total }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(rng.randomSample() * (total - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, count).sort((a, b) => a - b);
}

function tooFew(what: string, found: number, needed: number): UserError {
  return new UserError(
    `${what} has ${plural(found, 'image')}, fewer than the ${needed} asked for`,
    `pass --num ${found} or fewer, or add images`,
  );
}

async function folderImageNames(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new UserError(`cannot read the folder ${dir}: ${(err as Error).message}`);
  }
  return names.filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort();
}

/** How many images a folder, dataset or zip holds (a zip is read through once). */
export async function countImages(spec: SourceSpec): Promise<number> {
  if (spec.kind === 'checkpoint') return Number.POSITIVE_INFINITY;
  if (spec.kind === 'zip') return (await zipImages(spec.path)).length;
  return (await folderImageNames(spec.path)).length;
}

async function zipImages(path: string): Promise<Array<{ name: string; data: Buffer }>> {
  const source = await openZip(path, DEFAULT_LIMITS);
  const files: Array<{ name: string; data: Buffer }> = [];
  for await (const item of source.items()) {
    if (item.kind === 'file' && IMAGE_EXTENSIONS.has(extname(item.name).toLowerCase())) files.push(item);
  }
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export interface ReadImagesOptions {
  /** Images wanted; a seeded choice when the source has more, an error when it has fewer. */
  count: number;
  /** Side the images are decoded to. */
  size: number;
  seed: number;
}

/** `count` images of a folder, dataset or zip, decoded to `size` squares. */
export async function readImages(spec: SourceSpec, opts: ReadImagesOptions): Promise<RgbImage[]> {
  const what = `${spec.kind === 'zip' ? 'the zip' : 'the folder'} ${spec.path}`;
  if (spec.kind === 'checkpoint')
    throw new Error('readImages: a checkpoint renders images, use renderImages');
  const entries =
    spec.kind === 'zip'
      ? await zipImages(spec.path)
      : (await folderImageNames(spec.path)).map((name) => ({ name, data: join(spec.path, name) }));
  if (entries.length === 0) {
    throw new UserError(`${what} holds no images`, 'give PNG, JPEG or WebP files (directly in the folder)');
  }
  if (entries.length < opts.count) throw tooFew(what, entries.length, opts.count);
  const images: RgbImage[] = [];
  for (const index of pickIndices(entries.length, opts.count, opts.seed)) {
    const entry = entries[index];
    try {
      images.push(await decodeImage(entry.data, opts.size));
    } catch (err) {
      throw new UserError(
        `cannot decode ${spec.kind === 'zip' ? `${entry.name} in ${spec.path}` : entry.data}: ${(err as Error).message}`,
      );
    }
  }
  return images;
}

/** Loads the generator of a checkpoint, with a clear error when the file has none. */
export async function loadGeneratorCheckpoint(path: string): Promise<Checkpoint> {
  try {
    const ckpt = await loadImageGenerator(path);
    generatorParams(ckpt);
    return ckpt;
  } catch (err) {
    if (err instanceof UserError) {
      throw new UserError(
        `${path} is not a generator checkpoint: ${err.message}`,
        'give a .safetensors file with G_ema or G (a model, a snapshot or a blend)',
      );
    }
    throw err;
  }
}

export interface RenderOptions {
  /** Seeds seed, seed + 1, ... */
  count: number;
  seed: number;
  psi: number;
}

/** Images of `count` consecutive seeds from a generator (const noise, as gen_images.py). */
export async function renderImages(G: Generator, opts: RenderOptions): Promise<RgbImage[]> {
  const seeds = Array.from({ length: opts.count }, (_, i) => opts.seed + i);
  const images: RgbImage[] = [];
  await generateFromSeeds(
    G,
    seeds,
    async (batch) => {
      images.push(...(await tensorToRgb(batch)));
    },
    { psi: opts.psi, batchSize: 16 },
  );
  return images;
}

/** The generator of a checkpoint file, rendering `opts.count` seeds; the file is released after. */
export async function renderCheckpoint(
  path: string,
  opts: RenderOptions,
): Promise<{ images: RgbImage[]; ckpt: Checkpoint }> {
  const ckpt = await loadGeneratorCheckpoint(path);
  try {
    const G = new Generator(ckpt.config.G, generatorParams(ckpt));
    return { images: await renderImages(G, opts), ckpt };
  } finally {
    disposeCheckpoint(ckpt);
  }
}
