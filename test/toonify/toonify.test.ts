// The whole toonify job on a real photo (face-api's demo sample1.jpg: three faces) with the tiny
// fixture models (32x32: the aligned face is resized to 32): grid and images written, the face
// chosen as asked, every temporary copy of the photo gone afterwards, whatever the outcome.
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { initBackend } from '../../src/model/backend.ts';
import { generatorParams, loadImageGenerator, saveCheckpoint } from '../../src/model/checkpoint/io.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import { seedsToZ } from '../../src/model/sampling.ts';
import { tf } from '../../src/model/tf.ts';
import { blendCheckpoints } from '../../src/pipelines/blend.ts';
import { ProjectionCancelledError } from '../../src/pipelines/projection.ts';
import {
  alignPhoto,
  chooseFace,
  parseFaceChoice,
  psnrRgb,
  type ToonifyOptions,
  type ToonifyProgress,
  type ToonifyResult,
  toonify,
} from '../../src/pipelines/toonify.ts';

const FIXTURE = join(import.meta.dirname, '../fixtures/sg2_tiny');
const BASE = join(FIXTURE, 'model.safetensors');
const STYLE = join(FIXTURE, 'style.safetensors');
const FACE_API = dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json'));
const PHOTO = join(FACE_API, 'demo', 'sample1.jpg');
const SWAP = { style: STYLE, layer: 16 };

let root: string;
let work: string;
let firstRun: ToonifyResult;
const progress: ToonifyProgress[] = [];

async function pixels(path: string) {
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

function options(name: string, extra: Partial<ToonifyOptions> = {}): ToonifyOptions {
  return {
    photoPath: PHOTO,
    baseCheckpoint: BASE,
    blend: SWAP,
    outDir: join(root, name),
    face: 'largest',
    steps: 6,
    previewEvery: 3,
    tempDir: work,
    ...extra,
  };
}

beforeAll(async () => {
  await initBackend('wasm');
  root = await mkdtemp(join(tmpdir(), 'facestyle-toonify-test-'));
  work = join(root, 'work');
  await mkdir(work);
  firstRun = await toonify(options('largest', { onProgress: (p) => void progress.push(p) }));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('toonify a real photo', () => {
  it('writes original | reconstruction | stylised as a labelled grid and as images', async () => {
    const grid = await sharp(firstRun.gridPath).metadata();
    expect(grid.width).toBeGreaterThanOrEqual(3 * 256); // three tiles, shown at 256 px
    for (const path of [firstRun.originalPath, firstRun.reconstructionPath, firstRun.stylisedPath]) {
      const image = await sharp(path).metadata();
      expect([image.width, image.height]).toEqual([32, 32]);
    }
    const stylised = await pixels(firstRun.stylisedPath);
    const reconstruction = await pixels(firstRun.reconstructionPath);
    expect(psnrRgb(stylised, reconstruction)).toBeLessThan(30); // the blend changes the face
    expect(firstRun.metrics.psnr).toBeCloseTo(
      psnrRgb(reconstruction, await pixels(firstRun.originalPath)),
      6,
    );
    expect(firstRun.metrics.steps).toBe(6);
    expect(firstRun.metrics.backend).toBe('wasm');
  });

  it('aligns the largest of the three faces exactly as the dataset pipeline does', async () => {
    expect(firstRun.face).toMatchObject({ index: 0, count: 3 });
    const aligned = await alignPhoto(PHOTO, 32, { face: 'largest' });
    expect((await pixels(firstRun.originalPath)).data.equals(aligned.image.data)).toBe(true);
  });

  it('reports the stages in order, with previews of the projection', () => {
    const stages = [...new Set(progress.map((p) => p.stage))];
    expect(stages).toEqual(['aligning', 'loading', 'projecting', 'rendering']);
    const fractions = progress.map((p) => p.fraction);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(fractions.at(-1)).toBe(1);
    expect(progress.filter((p) => p.previewPath).map((p) => p.projection?.step)).toEqual([3, 6]);
  });

  it('deletes every temporary copy of the photo (aligned crop, previews) afterwards', async () => {
    expect(firstRun.intermediatesDir).toBeNull();
    expect(await readdir(work)).toEqual([]);
    expect((await readdir(join(root, 'largest'))).sort()).toEqual([
      'original.png',
      'reconstruction.png',
      'stylised.png',
      'toonify.png',
    ]);
  });

  it('renders the same stylised face with a saved blend as with blending on the fly', async () => {
    const base = await loadImageGenerator(BASE);
    const style = await loadImageGenerator(STYLE);
    const source = (c: typeof base) => ({
      path: c.path,
      config: c.config,
      meta: c.meta,
      params: generatorParams(c),
    });
    const { checkpoint } = blendCheckpoints(source(base), source(style), { layer: 16 });
    const blendPath = join(root, 'blend.safetensors');
    await saveCheckpoint(blendPath, checkpoint);
    const saved = await toonify(options('saved', { blend: blendPath }));
    const onTheFly = await pixels(firstRun.stylisedPath);
    expect((await pixels(saved.stylisedPath)).data.equals(onTheFly.data)).toBe(true);
  });

  it('keeps the intermediates only when asked', async () => {
    const kept = await toonify(options('kept', { keepIntermediates: true, steps: 2, previewEvery: 2 }));
    expect(kept.intermediatesDir).not.toBeNull();
    expect((await readdir(kept.intermediatesDir!)).sort()).toEqual(['aligned.png', 'preview.png']);
    await rm(kept.intermediatesDir!, { recursive: true });
  });
});

describe('photos toonify refuses', () => {
  it('several faces and none chosen: says how many and how to choose', async () => {
    const error = await toonify(options('unchosen', { face: undefined })).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toMatch(/shows 3 faces and none was chosen/);
    expect((error as UserError).hint).toMatch(/--face largest or --face N, N from 0 \(largest\) to 2/);
    await expect(toonify(options('missing', { face: 5 }))).rejects.toThrow(
      /face 5 does not exist: the photo shows 3 faces/,
    );
    expect(await readdir(work)).toEqual([]);
  });

  it('no face: a plain generated image gets a clear error', async () => {
    const ckpt = await loadImageGenerator(BASE);
    const image = tf.tidy(() =>
      new Generator(ckpt.config.G, generatorParams(ckpt)).generate(seedsToZ([4], ckpt.config.G.zDim)),
    );
    const values = await image.data();
    image.dispose();
    const rgb = Buffer.from(
      Array.from(values, (v) => Math.max(0, Math.min(255, Math.round(v * 127.5 + 128)))),
    );
    const path = join(root, 'generated.png');
    await sharp(rgb, { raw: { width: 32, height: 32, channels: 3 } })
      .resize(256, 256)
      .png()
      .toFile(path);
    const error = await toonify(options('noface', { photoPath: path })).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toBe('no face was found in the photo');
    expect(await readdir(work)).toEqual([]);
  });

  it('a missing photo file', async () => {
    await expect(toonify(options('nofile', { photoPath: join(root, 'absent.jpg') }))).rejects.toThrow(
      /cannot read the photo/,
    );
  });

  it('--face takes "largest" or a face number, nothing else', () => {
    expect(parseFaceChoice('largest')).toBe('largest');
    expect(parseFaceChoice(' 2 ')).toBe(2);
    for (const bad of ['left', '-1', '1.5', ''])
      expect(() => parseFaceChoice(bad)).toThrow(/face must be "largest" or a face number/);
  });

  it('chooseFace maps the pipeline outcomes to errors a member can act on', () => {
    expect(() =>
      chooseFace([{ status: 'not-an-image', reason: 'not a JPEG, PNG, WebP or GIF file' }], 0),
    ).toThrow(/cannot use the photo: not a JPEG/);
    const small = { status: 'too-small' as const, reason: 'face crop is 9 px across, needs 16' };
    expect(() =>
      chooseFace([{ ...small, face: { index: 0, count: 1, score: 0.9, cropSize: 9 } }], 'largest'),
    ).toThrow(/the face is too small/);
  });
});

describe('cancellation', () => {
  it('stops within a step and leaves no temporary file and no result', async () => {
    const controller = new AbortController();
    const error = await toonify(
      options('cancelled', {
        steps: 50,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.projection?.step === 2) controller.abort();
        },
      }),
    ).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ProjectionCancelledError);
    expect((error as ProjectionCancelledError).step).toBe(2);
    expect(await readdir(work)).toEqual([]);
    expect(await readdir(join(root, 'cancelled'))).toEqual([]);
  });
});
