// The toonify handler on a real photo (face-api's demo sample1.jpg, three faces) with the tiny
// fixture models: through the real queue and worker process (result files, progress with previews,
// cancellation, a refused photo), and in this process for what needs the clock or the files at
// hand (kept photos and their sweep, a saved blend that finds its base). A handful of projection
// steps each: the point is the wiring, test/toonify covers the projection itself.
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { jobConfigFromEnv } from '../../src/jobs/config.ts';
import { createJobQueue, type LocalJobQueue } from '../../src/jobs/create.ts';
import { WorkerModels } from '../../src/jobs/handlers/models.ts';
import type { HandlerContext } from '../../src/jobs/handlers/registry.ts';
import { toonifyHandler } from '../../src/jobs/handlers/toonify.ts';
import { KIND_SPECS, type ToonifyPayload } from '../../src/jobs/kinds.ts';
import type { JobEvent, ProgressUpdate } from '../../src/jobs/types.ts';
import { logger } from '../../src/log.ts';
import { generatorParams, loadImageGenerator, saveCheckpoint } from '../../src/model/checkpoint/io.ts';
import { blendCheckpoints } from '../../src/pipelines/blend.ts';
import {
  KEEP_PHOTOS_ENV,
  ORPHAN_AFTER_MS,
  photoRetentionMs,
  releasePhoto,
  sweepPhotos,
  toonifyPhotosDir,
} from '../../src/store/toonify-photos.ts';
import { DEFAULT_FIXTURE } from '../support/fixture.ts';
import { FAST_TIMING, OPEN_POLICY } from './harness.ts';

const FACE_API = dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json'));
const PHOTO = join(FACE_API, 'demo', 'sample1.jpg');
const HOUR = 3_600_000;
const actor = { userId: 'member', isAdmin: false };

let dataDir: string;
let photos: string;
let queue: LocalJobQueue;
const events: JobEvent[] = [];
let sequence = 0;

/** A copy of the photo where the bot saves uploads, as /toonify leaves it. */
async function upload(source = PHOTO): Promise<string> {
  const path = join(photos, `${Date.now()}${++sequence}.jpg`);
  await copyFile(source, path);
  return path;
}

function payload(photoPath: string, extra: Partial<ToonifyPayload> = {}): ToonifyPayload {
  return { photoPath, base: 'base', style: 'style', layer: 16, face: 'largest', steps: 6, ...extra };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function progressOf(jobId: string): ProgressUpdate[] {
  return events.filter((e) => e.job.id === jobId && e.job.progress).map((e) => e.job.progress!);
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'facestyle-toonify-jobs-'));
  photos = toonifyPhotosDir(dataDir);
  await mkdir(photos, { recursive: true });
  await mkdir(join(dataDir, 'models'), { recursive: true });
  await copyFile(join(DEFAULT_FIXTURE, 'model.safetensors'), join(dataDir, 'models', 'base.safetensors'));
  await copyFile(join(DEFAULT_FIXTURE, 'style.safetensors'), join(dataDir, 'models', 'style.safetensors'));
  const env: NodeJS.ProcessEnv = { ...process.env, FACESTYLE_BACKEND: 'wasm', FACESTYLE_DATA_DIR: dataDir };
  delete env[KEEP_PHOTOS_ENV];
  queue = await createJobQueue({
    config: { ...jobConfigFromEnv(env), policy: OPEN_POLICY },
    timing: FAST_TIMING,
    maintenance: false,
    workerEnv: env,
  });
  queue.subscribe((event) => events.push(event));
});

afterAll(async () => {
  await queue?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('toonify jobs in the worker process', () => {
  it('writes the grid and the images into the job folder, reports progress with previews, deletes the photo', async () => {
    const photoPath = await upload();
    const job = await queue.submit({ kind: 'toonify', payload: payload(photoPath), actor });
    const done = await queue.waitFor(job.id, { timeoutMs: 120_000 });
    expect(done.status, done.failure?.message).toBe('completed');
    if (done.kind !== 'toonify' || !done.result) throw new Error('no result');
    const result = done.result;
    const folder = dirname(result.gridPath);
    expect(folder).toBe(join(dataDir, 'artifacts', job.id));
    const grid = await sharp(result.gridPath).metadata();
    expect(grid.width).toBeGreaterThanOrEqual(3 * 256);
    for (const path of [result.reconstructionPath, result.stylisedPath])
      expect(await sharp(path).metadata()).toMatchObject({ width: 32, height: 32 });
    expect(result).toMatchObject({ face: { index: 0, count: 3 }, steps: 6, backend: 'wasm' });
    expect(result.psnr).toBeGreaterThan(0);
    // Neither the bare crop nor the last preview (crop | reconstruction) stays behind.
    expect((await readdir(folder)).sort()).toEqual(['reconstruction.png', 'stylised.png', 'toonify.png']);

    const progress = progressOf(job.id);
    expect(progress.some((p) => /^fitting the face: step \d\/6/.test(p.stage))).toBe(true);
    expect(progress.some((p) => p.previewPath === join(folder, 'preview.png'))).toBe(true);
    expect(progress.map((p) => p.fraction)).toEqual(progress.map((p) => p.fraction).sort((a, b) => a - b));

    expect(await exists(photoPath)).toBe(false);
    expect(await readdir(photos)).toEqual([]);
  });

  it('stops a cancelled job within a step and deletes its photo', async () => {
    const photoPath = await upload();
    const job = await queue.submit({ kind: 'toonify', payload: payload(photoPath, { steps: 1000 }), actor });
    const cancelled = new Promise<void>((resolve, reject) => {
      const stop = queue.subscribe((event) => {
        if (event.job.id !== job.id || !event.job.progress?.stage.startsWith('fitting')) return;
        stop();
        queue.cancel(job.id, actor).then(() => resolve(), reject);
      });
    });
    await cancelled;
    const done = await queue.waitFor(job.id, { timeoutMs: 60_000 });
    expect(done.status).toBe('cancelled');
    // Well before the first preview (step 100): the worker saw the cancel between two steps.
    const steps = progressOf(job.id).map((p) => Number(/step (\d+)\//.exec(p.stage)?.[1] ?? 0));
    expect(Math.max(...steps)).toBeLessThan(100);
    expect(await exists(photoPath)).toBe(false);
    expect(await readdir(photos)).toEqual([]);
  });

  it('fails a photo without a face with what to do, and deletes it all the same', async () => {
    const photoPath = join(photos, 'wall.png');
    await sharp({ create: { width: 256, height: 256, channels: 3, background: { r: 90, g: 120, b: 200 } } })
      .png()
      .toFile(photoPath);
    const job = await queue.submit({ kind: 'toonify', payload: payload(photoPath), actor });
    const done = await queue.waitFor(job.id, { timeoutMs: 60_000 });
    expect(done.status).toBe('failed');
    expect(done.failure?.message).toMatch(/no face was found in the photo/);
    expect(await exists(photoPath)).toBe(false);
  });
});

describe('the toonify handler, in this process', () => {
  const previous = process.env.FACESTYLE_BACKEND;
  let models: WorkerModels;
  let blendPath: string;

  beforeAll(async () => {
    process.env.FACESTYLE_BACKEND = 'wasm';
    models = new WorkerModels(dataDir);
    await models.ensureBackend();
    // A saved blend as /blend leaves it, installed as a model of its own.
    const load = async (file: string) => {
      const c = await loadImageGenerator(join(dataDir, 'models', file));
      return { path: c.path, config: c.config, meta: c.meta, params: generatorParams(c) };
    };
    const { checkpoint } = blendCheckpoints(await load('base.safetensors'), await load('style.safetensors'), {
      layer: 16,
      name: 'tiny-toon',
    });
    blendPath = join(dataDir, 'models', 'tiny-toon.safetensors');
    await saveCheckpoint(blendPath, checkpoint);
  });

  afterAll(async () => {
    await models?.clear();
    if (previous === undefined) delete process.env.FACESTYLE_BACKEND;
    else process.env.FACESTYLE_BACKEND = previous;
  });

  function context(jobId: string, signal = new AbortController().signal) {
    const progress: ProgressUpdate[] = [];
    const ctx: HandlerContext = {
      jobId,
      signal,
      progress: (update) => void progress.push(update),
      artifactsDir: join(dataDir, 'artifacts', jobId),
      log: logger('test'),
      attempt: 1,
      maxAttempts: 1,
    };
    return { ctx, progress };
  }

  it('with a retention, keeps the photo in kept/ until the sweep finds it expired; a saved blend finds its base', async () => {
    const handler = toonifyHandler(models, { dataDir, retentionMs: 2 * HOUR });
    const photoPath = await upload();
    const { ctx, progress } = context('kept-1');
    await mkdir(ctx.artifactsDir, { recursive: true });
    // No base: the blend records the model it was made from.
    const result = await handler({ photoPath, blend: 'tiny-toon', face: 0, steps: 4 }, ctx);
    expect(await exists(result.stylisedPath)).toBe(true);
    expect(progress.at(-1)).toMatchObject({ fraction: 1 });
    expect(progress.some((p) => p.stage === 'loading tiny-toon')).toBe(true);

    expect(await exists(photoPath)).toBe(false);
    const kept = join(photos, 'kept');
    expect(await readdir(kept)).toHaveLength(1);
    expect(await sweepPhotos({ dataDir, retentionMs: 2 * HOUR }, Date.now() + HOUR)).toEqual([]);
    const removed = await sweepPhotos({ dataDir, retentionMs: 2 * HOUR }, Date.now() + 2 * HOUR + 1000);
    expect(removed).toHaveLength(1);
    expect(await readdir(kept)).toEqual([]);
  });

  it('refuses absurd settings before touching the photo, and releases it anyway', async () => {
    const handler = toonifyHandler(models, { dataDir, retentionMs: 0 });
    const photoPath = await upload();
    const { ctx } = context('unknown-style');
    await mkdir(ctx.artifactsDir, { recursive: true });
    await expect(handler(payload(photoPath, { style: 'nope' }), ctx)).rejects.toThrow(
      /no model named "nope"/,
    );
    expect(await exists(photoPath)).toBe(false);
    const another = await upload();
    await expect(handler(payload(another, { layer: 64 }), ctx)).rejects.toThrow(
      /layer 64px is above the model's resolution \(32px\)/,
    );
    expect(await exists(another)).toBe(false);
  });

  it('words the choice of a face for jobs, not for the command line', async () => {
    const handler = toonifyHandler(models, { dataDir, retentionMs: 0 });
    const { ctx } = context('which-face');
    await mkdir(ctx.artifactsDir, { recursive: true });
    // No face chosen means the largest (the bot says how many there were); a face that is not
    // there is refused with the job's wording.
    const error = await handler(payload(await upload(), { face: 5 }), ctx).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toMatch(/face 5 does not exist: the photo shows 3 faces/);
    expect((error as UserError).hint).toBe(
      'choose one with the face option: a number from 0 (largest) to 2 (smallest)',
    );
  });
});

describe('photo files', () => {
  it('never deletes a photo outside the upload folder (a job submitted from the command line)', async () => {
    const own = join(dataDir, 'my-photo.jpg');
    await copyFile(PHOTO, own);
    expect(await releasePhoto(own, { dataDir, retentionMs: 0 })).toBe('not-uploaded');
    expect(await exists(own)).toBe(true);
  });

  it('sweeps photos whose job ended unseen after a day, and no sooner', async () => {
    const waiting = join(photos, 'waiting.jpg');
    await writeFile(waiting, 'x');
    expect(await sweepPhotos({ dataDir, retentionMs: 0 })).toEqual([]);
    const old = new Date(Date.now() - ORPHAN_AFTER_MS - 1000);
    await utimes(waiting, old, old);
    expect(await sweepPhotos({ dataDir, retentionMs: 0 })).toEqual([waiting]);
  });

  it(`reads ${KEEP_PHOTOS_ENV} in hours, 0 by default, and refuses anything else`, () => {
    expect(photoRetentionMs({})).toBe(0);
    expect(photoRetentionMs({ [KEEP_PHOTOS_ENV]: '1.5' })).toBe(1.5 * HOUR);
    for (const bad of ['-1', 'two', '1h'])
      expect(() => photoRetentionMs({ [KEEP_PHOTOS_ENV]: bad })).toThrow(/must be a number of hours/);
    expect(() => jobConfigFromEnv({ [KEEP_PHOTOS_ENV]: 'forever' })).toThrow(UserError);
  });
});

describe('toonify payloads', () => {
  const validate = (p: Record<string, unknown>) => () =>
    KIND_SPECS.toonify.validate({ photoPath: '/tmp/p.jpg', style: 'toons', layer: 32, ...p });

  it('takes a style with a layer, or a saved blend, with defaults for the rest', () => {
    expect(validate({})()).toMatchObject({ style: 'toons', layer: 32 });
    expect(KIND_SPECS.toonify.validate({ photoPath: '/tmp/p.jpg', blend: 'toon-blend' })).toMatchObject({
      blend: 'toon-blend',
    });
    expect(KIND_SPECS.toonify.units({ photoPath: 'p', blend: 'b' })).toBe(300);
  });

  it('refuses absurd values with what is allowed', () => {
    expect(validate({ steps: 100_000 })).toThrow(/"steps" must be an integer from 1 to 1000/);
    expect(validate({ steps: 0 })).toThrow(UserError);
    expect(validate({ learningRate: 50 })).toThrow(/"learningRate" must be a number from 0.0001 to 1/);
    expect(validate({ pixelWeight: 0, perceptualWeight: 0 })).toThrow(/cannot both be 0/);
    expect(validate({ face: -1 })).toThrow(/"face"/);
    expect(validate({ blend: 'b' })).toThrow(/either "blend" .* or "style"/);
    expect(() => KIND_SPECS.toonify.validate({ photoPath: 'p', blend: 'b', layer: 16 })).toThrow(
      /"layer" goes with "style"/,
    );
    expect(validate({ layer: undefined })).toThrow(/"layer" must be an integer/);
  });
});
