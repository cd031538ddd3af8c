// The bot's dataset intake for /finetune on a real archive: the same dataset code as the CLI, with
// the server's minimum of usable faces (FACESTYLE_MIN_DATASET_IMAGES) and the contact sheet the
// admin is shown before the training starts.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveDatasetIntake } from '../../src/bot/datasets.ts';
import { DEMO_PHOTOS } from '../datasets/helpers/fixtures.ts';
import { buildZip } from '../datasets/helpers/zip-writer.ts';

let dir: string;
let archive: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'facestyle-intake-'));
  archive = join(dir, 'faces.zip');
  // Two group photos: the largest face of each is kept.
  await writeFile(
    archive,
    buildZip(DEMO_PHOTOS.slice(0, 2).map((path, i) => ({ name: `photo${i}.jpg`, data: readFileSync(path) }))),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ArchiveDatasetIntake', () => {
  it('refuses a dataset under the configured minimum, saying how many faces it found', async () => {
    const intake = new ArchiveDatasetIntake(join(dir, 'strict'), 3);
    await expect(intake.importArchive(archive, { name: 'few', resolution: 64 })).rejects.toThrow(
      /2 usable images?.*at least 3/,
    );
  });

  it('builds an aligned dataset with a contact sheet of the kept faces', async () => {
    const intake = new ArchiveDatasetIntake(join(dir, 'lenient'), 2);
    const imported = await intake.importArchive(archive, { name: 'two', resolution: 64 });
    expect(imported).toMatchObject({ images: 2, skipped: 0 });
    expect(imported.datasetDir).toBe(join(dir, 'lenient', 'two'));
    const sheet = await sharp(imported.contactSheet!).metadata();
    expect(sheet.format).toBe('png');
    expect(sheet.width).toBeGreaterThanOrEqual(128);
  });
});
