// align: 'auto', the default of /finetune: photos are aligned on their detected face, drawings the
// photo-trained detector misses are centre-cropped, the summary counts both and the contact sheet
// marks the centre-cropped ones. And cartoon faces, whose dHashes are a bit or two apart, are not
// taken for duplicates of each other, while a re-encoded copy still is.
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/datasets/build.ts';
import { CENTRED_MARK_RGB, contactSheetLayout } from '../../src/datasets/contact-sheet.ts';
import { describeAlignment } from '../../src/datasets/summary.ts';
import { renderDemoFace } from '../../src/demo/data.ts';
import { DEMO_PHOTOS, tempFolder } from './helpers/fixtures.ts';
import { buildZip } from './helpers/zip-writer.ts';

let tmp: { path: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  tmp = await tempFolder();
  await mkdir(join(tmp.path, 'datasets'));
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("buildDataset with align: 'auto'", () => {
  it('aligns the photo, centre-crops the drawings, marks them on the sheet, and keeps distinct cartoons', async () => {
    const lorelei = await Promise.all([0, 1, 2].map((seed) => renderDemoFace('lorelei', seed, 256)));
    const reencoded = await sharp(lorelei[0]).jpeg({ quality: 70 }).toBuffer();
    const input = join(tmp.path, 'mixed.zip');
    await writeFile(
      input,
      buildZip([
        { name: 'photo.jpg', data: readFileSync(DEMO_PHOTOS[0]) },
        ...lorelei.map((data, i) => ({ name: `lorelei${i}.png`, data })),
        { name: 'lorelei0-again.jpg', data: reencoded },
      ]),
    );
    const report = await buildDataset({
      input,
      outDir: join(tmp.path, 'datasets', 'mixed'),
      resolution: 64,
      align: 'auto',
    });
    const status = Object.fromEntries(report.entries.map((e) => [e.source, [e.status, e.transform?.kind]]));
    expect(status).toEqual({
      'photo.jpg': ['kept', 'ffhq'],
      'lorelei0.png': ['kept', 'center'],
      'lorelei1.png': ['kept', 'center'],
      'lorelei2.png': ['kept', 'center'],
      'lorelei0-again.jpg': ['duplicate', 'center'],
    });
    expect(report.keptBy).toEqual({ faces: 1, center: 3 });
    expect(describeAlignment(report)).toBe('auto alignment: 1 on a detected face, 3 centre-cropped');

    // The strip along the bottom of each thumbnail: orange for the centre-cropped, absent for the photo.
    const layout = contactSheetLayout(4);
    const { data, info } = await sharp(report.contactSheet!).raw().toBuffer({ resolveWithObject: true });
    const bottomPixel = (i: number) => {
      const left = 2 + (i % layout.columns) * (layout.thumb + 2) + Math.floor(layout.thumb / 2);
      const top = 2 + Math.floor(i / layout.columns) * (layout.thumb + 2) + layout.thumb - 1;
      const at = (top * info.width + left) * info.channels;
      return [data[at], data[at + 1], data[at + 2]];
    };
    expect(bottomPixel(0)).not.toEqual([...CENTRED_MARK_RGB]);
    for (const i of [1, 2, 3]) expect(bottomPixel(i)).toEqual([...CENTRED_MARK_RGB]);
  }, 60_000);
});
