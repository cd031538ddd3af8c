// The real model handlers through the real queue and worker process: generate (batched), blend
// (with the saved blend checkpoint and the epoch x layer matrix) and a short fine-tune, on the tiny
// parity models. Embedded queue here; the shared suite covers BullMQ's mechanics.
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderDemoFace } from '../../src/demo/data.ts';
import { jobConfigFromEnv } from '../../src/jobs/config.ts';
import { createJobQueue, type LocalJobQueue } from '../../src/jobs/create.ts';
import { readCheckpointInfo } from '../../src/model/checkpoint/info.ts';
import { buildZip } from '../datasets/helpers/zip-writer.ts';
import { DEFAULT_FIXTURE } from '../support/fixture.ts';
import { FAST_TIMING } from './harness.ts';

let dataDir: string;
let queue: LocalJobQueue;
const actor = { userId: 'tester', isAdmin: true };

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'facestyle-handlers-'));
  await mkdir(join(dataDir, 'models'), { recursive: true });
  await copyFile(join(DEFAULT_FIXTURE, 'model.safetensors'), join(dataDir, 'models', 'base.safetensors'));
  await copyFile(join(DEFAULT_FIXTURE, 'style.safetensors'), join(dataDir, 'models', 'style.safetensors'));
  const config = jobConfigFromEnv({ FACESTYLE_DATA_DIR: dataDir, FACESTYLE_BACKEND: 'wasm' });
  queue = await createJobQueue({
    config,
    timing: FAST_TIMING,
    maintenance: false,
    workerEnv: { ...process.env, FACESTYLE_BACKEND: 'wasm' },
  });
});

afterAll(async () => {
  await queue?.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function size(path: string): Promise<{ width: number; height: number }> {
  const meta = await sharp(path).metadata();
  return { width: meta.width ?? 0, height: meta.height ?? 0 };
}

describe('model handlers in the worker process', () => {
  it('generates images for concurrent jobs, each with its own seeds and grid', async () => {
    const jobs = await Promise.all(
      [[0, 1], [2], [3, 4, 5]].map((seeds) =>
        queue.submit({
          kind: 'generate',
          payload: { checkpoint: 'base', seeds, psi: 0.7, grid: true },
          actor,
        }),
      ),
    );
    const done = await Promise.all(jobs.map((j) => queue.waitFor(j.id, { timeoutMs: 90_000 })));
    for (const [i, job] of done.entries()) {
      expect(job.status, job.failure?.message).toBe('completed');
      if (job.kind !== 'generate' || !job.result) throw new Error('no result');
      expect(job.result.imagePaths).toHaveLength([2, 1, 3][i]);
      expect(await size(job.result.imagePaths[0])).toEqual({ width: 32, height: 32 });
      expect((await stat(job.result.gridPath!)).size).toBeGreaterThan(0);
    }
  });

  it('renders variations of a face: near it, unlike another face, and different from each other', async () => {
    const plain = await queue.submit({
      kind: 'generate',
      payload: { checkpoint: 'base', seeds: [0, 7], psi: 1, grid: false },
      actor,
    });
    const varied = await queue.submit({
      kind: 'generate',
      payload: { checkpoint: 'base', seeds: [7, 8], psi: 1, grid: true, variation: { of: 0, strength: 0.6 } },
      actor,
    });
    const [a, b] = await Promise.all([plain, varied].map((j) => queue.waitFor(j.id, { timeoutMs: 90_000 })));
    if (a.kind !== 'generate' || b.kind !== 'generate' || !a.result || !b.result)
      throw new Error(`no result: ${a.failure?.message ?? b.failure?.message}`);
    const pixels = (path: string) => sharp(path).raw().toBuffer();
    const distance = async (x: string, y: string) => {
      const [p, q] = await Promise.all([pixels(x), pixels(y)]);
      return p.reduce((sum, v, i) => sum + Math.abs(v - q[i]), 0) / p.length;
    };
    const [face, other] = a.result.imagePaths;
    const [first, second] = b.result.imagePaths;
    // Seed 7 as a variation of face 0 is nearer face 0 than seed 7's own face is.
    expect(await distance(first, face)).toBeLessThan(await distance(other, face));
    expect(await distance(first, second)).toBeGreaterThan(0);
  });

  it('builds a /finetune dataset on the long lane, in the worker, and deletes the uploaded archive', async () => {
    const archivePath = join(dataDir, 'uploads', 'cartoons.zip');
    await mkdir(join(dataDir, 'uploads'), { recursive: true });
    const entries = [];
    for (let i = 0; i < 3; i++)
      entries.push({ name: `${i}.png`, data: await renderDemoFace('lorelei', i, 64) });
    await writeFile(archivePath, buildZip(entries));
    const job = await queue.submit({
      kind: 'dataset',
      payload: {
        archivePath,
        outDir: join(dataDir, 'datasets', 'cartoons'),
        resolution: 32,
        align: 'center',
        minImages: 3,
      },
      actor,
    });
    expect(job.lane).toBe('long');
    const done = await queue.waitFor(job.id, { timeoutMs: 90_000 });
    expect(done.status, done.failure?.message).toBe('completed');
    if (done.kind !== 'dataset' || !done.result) throw new Error('no result');
    expect(done.result).toMatchObject({ images: 3, skipped: 0, keptBy: { faces: 0, center: 3 } });
    expect(await size(done.result.contactSheet!)).toMatchObject({ width: expect.any(Number) });
    await expect(stat(archivePath)).rejects.toThrow(/ENOENT/);
  });

  it('blends, saves the blend as a model of its own, and renders the matrix', async () => {
    const job = await queue.submit({
      kind: 'blend',
      payload: {
        base: 'base',
        style: 'style',
        layer: 16,
        seeds: [0, 1],
        psi: 1,
        direction: 'texture',
        matrix: true,
      },
      actor,
    });
    const done = await queue.waitFor(job.id, { timeoutMs: 90_000 });
    expect(done.status, done.failure?.message).toBe('completed');
    if (done.kind !== 'blend' || !done.result) throw new Error('no result');
    const grid = await size(done.result.gridPath);
    expect(grid.width).toBeGreaterThan(3 * 128);
    expect(done.result.matrixPath).toBeDefined();
    const info = await readCheckpointInfo(done.result.checkpointPath!);
    expect(info.meta.kind).toBe('blend');
    expect(info.meta.extra).toMatchObject({ layer: 16, direction: 'texture' });
  });

  it('fails a blend of an unknown model with a message that lists the known ones', async () => {
    const job = await queue.submit({
      kind: 'blend',
      payload: { base: 'base', style: 'nope', layer: 16, seeds: [0], psi: 1 },
      actor,
    });
    const done = await queue.waitFor(job.id, { timeoutMs: 60_000 });
    expect(done.status).toBe('failed');
    expect(done.failure?.message).toMatch(/no model named "nope"/);
  });

  it('fine-tunes for one epoch and reports the snapshot with its preview', async () => {
    const datasetDir = join(dataDir, 'tiny-set');
    await mkdir(datasetDir);
    for (let i = 0; i < 8; i++) {
      await sharp({
        create: { width: 32, height: 32, channels: 3, background: { r: 200, g: 40 * i, b: 90 } },
      })
        .png()
        .toFile(join(datasetDir, `${i}.png`));
    }
    const runDir = join(dataDir, 'runs', 'tiny-style');
    const job = await queue.submit({
      kind: 'finetune',
      payload: { datasetDir, base: 'base', epochs: 1, snapshotEvery: 1, runDir, batchSize: 8 },
      actor,
    });
    const done = await queue.waitFor(job.id, { timeoutMs: 120_000 });
    expect(done.status, done.failure?.message).toBe('completed');
    if (done.kind !== 'finetune' || !done.result) throw new Error('no result');
    expect(done.result.snapshots.map((s) => s.epoch)).toEqual([1]);
    const snap = await readCheckpointInfo(done.result.snapshots[0].checkpointPath);
    expect(snap.meta.epoch).toBe(1);
    expect((await stat(done.result.snapshots[0].previewPath!)).size).toBeGreaterThan(0);
    // 8 images are too few to score (test/score covers scored runs): no score, no best epoch, and
    // the progress picture shows the preview beside the loss curve.
    expect(done.result.snapshots[0].score).toBeUndefined();
    expect(done.result.bestEpoch).toBeUndefined();
    expect((await size(done.result.progressImagePath!)).width).toBeGreaterThan(640);
  });
});
