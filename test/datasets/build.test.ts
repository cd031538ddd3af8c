// End to end in centre mode (no face model needed): a hostile archive becomes a dataset folder
// holding only kept images and reports, every bad entry gets its reason, nothing lands outside
// the dataset folder, and a second build of the same upload is free.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/datasets/build.ts';
import { contactSheetLayout } from '../../src/datasets/contact-sheet.ts';
import { DatasetError } from '../../src/datasets/errors.ts';
import type { DatasetProgress, ManifestEntry } from '../../src/datasets/types.ts';
import {
  blockPicture,
  buildTar,
  listTree,
  pngClaiming,
  tempFolder,
  truncatedJpeg,
} from './helpers/fixtures.ts';
import { buildZip } from './helpers/zip-writer.ts';

let tmp: { path: string; cleanup: () => Promise<void> };
let uploads: string;
let datasets: string;
beforeEach(async () => {
  tmp = await tempFolder();
  uploads = join(tmp.path, 'uploads');
  datasets = join(tmp.path, 'datasets');
  await Promise.all([uploads, datasets].map((dir) => mkdir(dir)));
});
afterEach(async () => {
  await tmp.cleanup();
});

async function upload(name: string, data: Buffer): Promise<string> {
  const path = join(uploads, name);
  await writeFile(path, data);
  return path;
}

async function hostileZip(): Promise<Buffer> {
  const inner = buildZip([{ name: 'inside.png', data: await blockPicture(50) }]);
  return buildZip([
    { name: 'art/a.png', data: await blockPicture(1) },
    { name: 'art/b.jpg', data: await blockPicture(2, 320, 240, 'jpeg') },
    { name: 'art/c.webp', data: await blockPicture(3, 240, 320, 'webp') },
    { name: 'art/d.gif', data: await blockPicture(4, 300, 300, 'gif') },
    {
      name: 'art/a-again.jpg',
      data: await sharp(await blockPicture(1))
        .jpeg({ quality: 80 })
        .toBuffer(),
    },
    { name: '../../escape.png', data: await blockPicture(5) },
    { name: '/etc/absolute.png', data: await blockPicture(6) },
    { name: 'art/link.png', data: '/etc/passwd', unixMode: 0o120777 },
    { name: 'art/readme.png', data: 'this is text, not a picture' },
    { name: 'art/huge.png', data: pngClaiming(20000, 20000) },
    { name: 'art/cut.jpg', data: await truncatedJpeg() },
    { name: 'art/nested.zip', data: inner },
    { name: 'art/disguised.png', data: inner },
    { name: 'art/tiny.png', data: await blockPicture(7, 40, 30) },
    { name: 'art/bomb.png', data: Buffer.alloc(8 * 2 ** 20) },
  ]);
}

const byName = (entries: ManifestEntry[]) => Object.fromEntries(entries.map((e) => [e.source, e]));

describe('buildDataset (centre mode)', () => {
  it('keeps the images, gives every other entry its reason, and writes only inside the dataset folder', async () => {
    const input = await upload('hostile.zip', await hostileZip());
    const outDir = join(datasets, 'art');
    const progress: DatasetProgress[] = [];
    const report = await buildDataset({
      input,
      outDir,
      resolution: 64,
      align: 'center',
      onProgress: (p) => progress.push(p),
    });

    const entries = byName(report.entries);
    const status = (name: string) => entries[name].status;
    expect(status('art/a.png')).toBe('kept');
    expect(status('art/b.jpg')).toBe('kept');
    expect(status('art/c.webp')).toBe('kept');
    expect(status('art/d.gif')).toBe('kept');
    expect(entries['art/a-again.jpg']).toMatchObject({
      status: 'duplicate',
      duplicateOf: 'images/000000.png',
    });
    expect(status('../../escape.png')).toBe('unsafe-path');
    expect(status('/etc/absolute.png')).toBe('unsafe-path');
    expect(status('art/link.png')).toBe('link');
    expect(entries['art/readme.png']).toMatchObject({ status: 'not-an-image' });
    expect(entries['art/huge.png']).toMatchObject({
      status: 'too-large',
      reason: expect.stringMatching(/20000x20000/),
    });
    expect(entries['art/cut.jpg']).toMatchObject({
      status: 'unreadable',
      reason: expect.stringMatching(/premature end/i),
    });
    expect(status('art/nested.zip')).toBe('nested-archive');
    expect(status('art/disguised.png')).toBe('nested-archive');
    expect(entries['art/tiny.png']).toMatchObject({
      status: 'too-small',
      reason: 'image is 30 px across, needs 32',
    });
    expect(status('art/bomb.png')).toBe('suspicious-compression');
    expect(report.kept).toBe(4);
    expect(report.sources).toBe(15);
    expect(report.counts).toMatchObject({ kept: 4, duplicate: 1, 'unsafe-path': 2, 'nested-archive': 2 });

    // Nothing outside the dataset folder: no temporary folder left, no escaped file.
    expect(await readdir(datasets)).toEqual(['art']);
    expect(await readdir(uploads)).toEqual(['hostile.zip']);
    expect(await readdir(tmp.path)).toEqual(['datasets', 'uploads']);
    expect(await listTree(outDir)).toEqual([
      'contact-sheet.png',
      'images',
      'images/000000.png',
      'images/000001.png',
      'images/000002.png',
      'images/000003.png',
      'manifest.json',
      'stats.json',
    ]);

    for (const file of ['images/000000.png', 'images/000003.png']) {
      const meta = await sharp(join(outDir, file)).metadata();
      expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 64, 64, 3]);
    }
    const sheet = await sharp(report.contactSheet!).metadata();
    const layout = contactSheetLayout(4);
    expect([sheet.width, sheet.height]).toEqual([layout.width, layout.height]);

    const manifest = JSON.parse(await readFile(join(outDir, 'manifest.json'), 'utf8'));
    expect(manifest.key).toBe(report.key);
    expect(manifest.entries).toEqual(report.entries);
    expect(manifest.input).toMatchObject({ name: 'hostile.zip', format: 'zip' });
    const stats = JSON.parse(await readFile(join(outDir, 'stats.json'), 'utf8'));
    expect(stats).toMatchObject({
      kept: 4,
      sources: 15,
      resolution: 64,
      align: 'center',
      counts: report.counts,
    });

    expect(progress.map((p) => p.done)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(progress.every((p) => p.total === 15)).toBe(true);
    expect(progress.at(-1)?.kept).toBe(4);
  });

  it('records the centre crop as a transform and samples where it says', async () => {
    // Three vertical bands: red | green | blue, 100 px each, on a 300x200 image.
    const width = 300;
    const height = 200;
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) pixels[(y * width + x) * 3 + Math.floor(x / 100)] = 255;
    }
    const bands = await sharp(pixels, { raw: { width, height, channels: 3 } })
      .png()
      .toBuffer();
    // The same picture stored sideways with an EXIF orientation tag: read upright, it is 200x300.
    const sideways = await sharp(bands)
      .rotate(-90)
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const input = await upload(
      'bands.zip',
      buildZip([
        { name: 'bands.png', data: bands },
        { name: 'sideways.jpg', data: sideways },
      ]),
    );
    const report = await buildDataset({
      input,
      outDir: join(datasets, 'bands'),
      resolution: 64,
      align: 'center',
      duplicateDistance: -1,
    });

    const [flat, rotated] = report.entries;
    expect(flat.transform).toEqual({
      kind: 'center',
      crop: { left: 50, top: 0, size: 200 },
      affine: [3.125, 0, 50, 0, 3.125, 0],
    });
    const { data } = await sharp(join(report.outDir, flat.file!)).raw().toBuffer({ resolveWithObject: true });
    const rgbAt = (x: number, y: number) => [...data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)];
    // Crop x 50..250 -> red until source x 100 (output 16), green to 200 (output 48), then blue.
    expect(rgbAt(8, 32)).toEqual([255, 0, 0]);
    expect(rgbAt(32, 32)).toEqual([0, 255, 0]);
    expect(rgbAt(56, 32)).toEqual([0, 0, 255]);

    expect(rotated.sourceSize).toEqual({ width: 300, height: 200 });
    expect(rotated.status).toBe('kept');
  });

  it('builds from a tar.gz and from a folder the same way', async () => {
    const pictures = await Promise.all([11, 12, 13].map((seed) => blockPicture(seed)));
    const tgz = await upload(
      'art.tar.gz',
      await buildTar(pictures.map((data, i) => ({ name: `art/${i}.png`, data }))),
    );
    const fromTar = await buildDataset({
      input: tgz,
      outDir: join(datasets, 'tar'),
      resolution: 32,
      align: 'center',
    });
    const folder = join(uploads, 'art');
    await mkdir(folder);
    for (const [i, data] of pictures.entries()) await writeFile(join(folder, `${i}.png`), data);
    const fromFolder = await buildDataset({
      input: folder,
      outDir: join(datasets, 'folder'),
      resolution: 32,
      align: 'center',
    });
    expect(fromTar.kept).toBe(3);
    expect(fromFolder.entries.map((e) => e.hash)).toEqual(fromTar.entries.map((e) => e.hash));
  });

  it('returns the existing dataset when the same upload arrives again', async () => {
    const zip = buildZip(
      await Promise.all(
        [21, 22].map(async (seed) => ({ name: `${seed}.png`, data: await blockPicture(seed) })),
      ),
    );
    const first = await buildDataset({
      input: await upload('a.zip', zip),
      outDir: join(datasets, 'x'),
      resolution: 32,
      align: 'center',
    });
    const marker = join(first.outDir, 'images', '000000.png');
    const before = await readFile(marker);
    // Another copy of the same bytes under another name is the same upload.
    const again = await buildDataset({
      input: await upload('copy.zip', zip),
      outDir: join(datasets, 'x'),
      resolution: 32,
      align: 'center',
    });
    expect(again.reused).toBe(true);
    expect(first.reused).toBe(false);
    expect(again.key).toBe(first.key);
    expect(again.entries).toEqual(first.entries);
    expect((await readFile(marker)).equals(before)).toBe(true);
    // Other options make another dataset, which may not overwrite this one.
    await expect(
      buildDataset({
        input: await upload('b.zip', zip),
        outDir: join(datasets, 'x'),
        resolution: 64,
        align: 'center',
      }),
    ).rejects.toThrow(/already holds a dataset built from another input or with other options/);
    expect(await readdir(datasets)).toEqual(['x']);
  });

  it('refuses too few usable images without publishing them, so the name can be used again', async () => {
    const zip = buildZip([
      { name: 'one.png', data: await blockPicture(31) },
      { name: 'notes.png', data: 'text' },
    ]);
    const outDir = join(datasets, 'few');
    const err = await buildDataset({
      input: await upload('few.zip', zip),
      outDir,
      resolution: 32,
      align: 'center',
      minImages: 5,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    const { message, report } = err as DatasetError;
    expect(message).toBe('only 1 usable image, at least 5 needed (1 not-an-image)');
    expect(report?.kept).toBe(1);
    expect(report?.published).toBe(false);
    expect(report?.contactSheet).toBeNull();
    // Neither the dataset nor its temporary folder is left: the name is free.
    expect(await readdir(datasets)).toEqual([]);
    // A retry under the same name with a bigger upload builds it.
    const bigger = buildZip(
      await Promise.all(
        [31, 32, 33, 34, 35].map(async (seed) => ({ name: `${seed}.png`, data: await blockPicture(seed) })),
      ),
    );
    const report2 = await buildDataset({
      input: await upload('more.zip', bigger),
      outDir,
      resolution: 32,
      align: 'center',
      minImages: 5,
    });
    expect(report2.kept).toBe(5);
    expect(await readdir(datasets)).toEqual(['few']);
  });

  it('leaves nothing behind when the archive is refused', async () => {
    const many = buildZip(
      Array.from({ length: 10_000 }, (_, i) => ({ name: `${i}.png`, data: 'x', method: 'store' as const })),
    );
    await expect(
      buildDataset({
        input: await upload('many.zip', many),
        outDir: join(datasets, 'many'),
        resolution: 32,
        align: 'center',
      }),
    ).rejects.toThrow('the input has more than 5000 entries');
    await expect(
      buildDataset({
        input: await upload('empty.zip', buildZip([])),
        outDir: join(datasets, 'empty'),
        resolution: 32,
        align: 'center',
      }),
    ).rejects.toThrow('the input holds no files');
    const onlyDirs = buildZip([{ name: 'a/' }, { name: 'a/b/' }]);
    await expect(
      buildDataset({
        input: await upload('dirs.zip', onlyDirs),
        outDir: join(datasets, 'dirs'),
        resolution: 32,
        align: 'center',
      }),
    ).rejects.toThrow('the input holds no files');
    expect(await readdir(datasets)).toEqual([]);
  });

  it('rejects bad options with a DatasetError', async () => {
    const input = await upload('ok.zip', buildZip([{ name: 'a.png', data: await blockPicture(41) }]));
    const outDir = join(datasets, 'bad');
    await expect(buildDataset({ input, outDir, resolution: 100, align: 'center' })).rejects.toThrow(
      /power of two/,
    );
    await expect(buildDataset({ input, outDir, resolution: 64, align: 'sideways' as never })).rejects.toThrow(
      /align must be/,
    );
    await expect(
      buildDataset({ input, outDir, resolution: 64, align: 'center', limits: { maxEntries: 0 } }),
    ).rejects.toThrow(/maxEntries must be a positive number/);
    await expect(
      buildDataset({ input: join(uploads, 'missing.zip'), outDir, resolution: 64, align: 'center' }),
    ).rejects.toThrow(/input not found/);
    expect(await readdir(datasets)).toEqual([]);
  });
});
