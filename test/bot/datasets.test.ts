// The dataset job that /finetune queues, run by its worker handler on a real archive: the same
// dataset code as the CLI, the server's minimum of usable faces, the contact sheet the admin sees
// before the training starts, a refusal members can read (no server folders), and the archive
// deleted once read.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetHandler } from '../../src/jobs/handlers/dataset.ts';
import type { HandlerContext } from '../../src/jobs/handlers/registry.ts';
import { logger } from '../../src/log.ts';
import { DEMO_PHOTOS } from '../datasets/helpers/fixtures.ts';
import { buildZip } from '../datasets/helpers/zip-writer.ts';

let dir: string;

async function photoArchive(name: string): Promise<string> {
  const archive = join(dir, name);
  // Two group photos: the largest face of each is kept.
  await writeFile(
    archive,
    buildZip(DEMO_PHOTOS.slice(0, 2).map((path, i) => ({ name: `photo${i}.jpg`, data: readFileSync(path) }))),
  );
  return archive;
}

function handlerContext(progress: Array<{ fraction: number; stage: string }> = []): HandlerContext {
  return {
    jobId: 'test',
    signal: new AbortController().signal,
    progress: (update) => progress.push(update),
    artifactsDir: dir,
    log: logger('dataset-test'),
    attempt: 1,
    maxAttempts: 1,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'facestyle-intake-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the dataset job', () => {
  it('refuses a dataset under the minimum, saying how many faces it found and naming no server path', async () => {
    const archivePath = await photoArchive('few.zip');
    const outDir = join(dir, 'datasets', 'few');
    const failure = await datasetHandler(
      { archivePath, outDir, resolution: 64, align: 'faces', minImages: 3 },
      handlerContext(),
    ).catch((err: Error & { hint?: string }) => err);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(/2 usable images?.*at least 3/);
    expect(`${(failure as Error).message} ${(failure as { hint?: string }).hint ?? ''}`).not.toContain(dir);
    expect(existsSync(archivePath)).toBe(false);
  });

  it('builds an aligned dataset with a contact sheet, reporting progress and how each image was cropped', async () => {
    const archivePath = await photoArchive('two.zip');
    const progress: Array<{ fraction: number; stage: string }> = [];
    const result = await datasetHandler(
      { archivePath, outDir: join(dir, 'datasets', 'two'), resolution: 64, align: 'auto', minImages: 2 },
      handlerContext(progress),
    );
    expect(result).toMatchObject({ images: 2, skipped: 0, keptBy: { faces: 2, center: 0 }, notUsed: '' });
    expect(result.datasetDir).toBe(join(dir, 'datasets', 'two'));
    expect(progress.at(-1)).toEqual({ fraction: 1, stage: '2/2 images read, 2 kept' });
    const sheet = await sharp(result.contactSheet!).metadata();
    expect(sheet.format).toBe('png');
    expect(sheet.width).toBeGreaterThanOrEqual(128);
    expect(existsSync(archivePath)).toBe(false);
  });
});
