// Face alignment on real photos (face-api's demo group photos, 22 faces): the eyes must end up
// where the FFHQ recipe puts them, which we check by detecting the landmarks again on the
// aligned output, and the face-mode build must report every kind of image correctly.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/datasets/build.ts';
import { type DetectedFace, detectFaces } from '../../src/datasets/face-detector.ts';
import { applyAffine, ffhqCrop, ffhqKeypoints, invertAffine, quadAffine } from '../../src/datasets/ffhq.ts';
import { type RgbImage, toRgb } from '../../src/datasets/image.ts';
import type { Point } from '../../src/datasets/types.ts';
import { alignToQuad } from '../../src/datasets/warp.ts';
import { tf } from '../../src/model/tf.ts';
import { blockPicture, DEMO_PHOTOS, listTree, tempFolder } from './helpers/fixtures.ts';
import { buildZip } from './helpers/zip-writer.ts';

const RESOLUTION = 256;
const MIN_SCORE = 0.5;
const CANONICAL_LEFT: Point = [0.375 * RESOLUTION, 0.475 * RESOLUTION];
const CANONICAL_RIGHT: Point = [0.625 * RESOLUTION, 0.475 * RESOLUTION];

let tmp: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempFolder();
});
afterAll(async () => {
  await tmp.cleanup();
});

const distance = (a: Point, b: Point) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/**
 * Eye centres found on an aligned crop. SSD misses faces that fill the whole frame, so the crop
 * is detected inside a grey border; the face whose left eye is nearest `near` is the one we made.
 */
async function redetectEyes(
  aligned: RgbImage,
  near: Point,
): Promise<{ eyeLeft: Point; eyeRight: Point } | null> {
  const pad = aligned.width / 2;
  const side = aligned.width + 2 * pad;
  const canvas = Buffer.alloc(side * side * 3, 128);
  for (let y = 0; y < aligned.height; y++) {
    aligned.data.copy(
      canvas,
      ((y + pad) * side + pad) * 3,
      y * aligned.width * 3,
      (y + 1) * aligned.width * 3,
    );
  }
  const faces = await detectFaces({ data: canvas, width: side, height: side }, 0.3);
  const candidates = faces.map((face) => {
    const { eyeLeft, eyeRight } = ffhqKeypoints(face.landmarks);
    return {
      eyeLeft: [eyeLeft[0] - pad, eyeLeft[1] - pad] as Point,
      eyeRight: [eyeRight[0] - pad, eyeRight[1] - pad] as Point,
    };
  });
  candidates.sort((a, b) => distance(a.eyeLeft, near) - distance(b.eyeLeft, near));
  return candidates[0] ?? null;
}

/** Where the FFHQ recipe maps this face's eyes in a RESOLUTION-pixel crop. */
function expectedEyes(face: DetectedFace): { eyeLeft: Point; eyeRight: Point } {
  const toOutput = invertAffine(quadAffine(ffhqCrop(face.landmarks).quad, RESOLUTION));
  const { eyeLeft, eyeRight } = ffhqKeypoints(face.landmarks);
  return { eyeLeft: applyAffine(toOutput, eyeLeft), eyeRight: applyAffine(toOutput, eyeRight) };
}

describe('FFHQ alignment of real faces', () => {
  it('puts the eyes of all demo faces where FFHQ does, within a few pixels', async () => {
    const errors: number[] = [];
    const expectedLeft: Point[] = [];
    let faceCount = 0;
    let redetected = 0;
    for (const photo of DEMO_PHOTOS) {
      const image = await toRgb(sharp(photo));
      const faces = await detectFaces(image, MIN_SCORE);
      expect(faces.length).toBeGreaterThanOrEqual(3);
      faceCount += faces.length;
      for (const face of faces) {
        const expected = expectedEyes(face);
        // The recipe itself puts a frontal face's eyes at (0.375, 0.475) and (0.625, 0.475) of the
        // side; turned heads land a little off that.
        expect(distance(expected.eyeLeft, CANONICAL_LEFT) / RESOLUTION).toBeLessThan(0.06);
        expect(distance(expected.eyeRight, CANONICAL_RIGHT) / RESOLUTION).toBeLessThan(0.06);
        expectedLeft.push(expected.eyeLeft);
        // The resampled image: a detector run on it finds the eyes there.
        const aligned = await alignToQuad(image, ffhqCrop(face.landmarks).quad, RESOLUTION);
        const found = await redetectEyes(aligned, expected.eyeLeft);
        if (!found) continue;
        redetected++;
        errors.push(distance(found.eyeLeft, expected.eyeLeft), distance(found.eyeRight, expected.eyeRight));
      }
    }
    expect(faceCount).toBe(22);
    const meanLeft: Point = [0, 1].map(
      (k) => expectedLeft.reduce((sum, p) => sum + p[k], 0) / expectedLeft.length,
    ) as Point;
    expect(distance(meanLeft, CANONICAL_LEFT) / RESOLUTION).toBeLessThan(0.015);
    expect(redetected).toBeGreaterThanOrEqual(20);
    // Landmark detection itself jitters by 1-3 px at this size.
    expect(Math.max(...errors)).toBeLessThan(8);
    expect(errors.reduce((a, b) => a + b, 0) / errors.length).toBeLessThan(3);
  });

  it('levels a tilted head', async () => {
    const tilted = await toRgb(sharp(DEMO_PHOTOS[5]).rotate(30, { background: '#808080' }));
    const [face] = await detectFaces(tilted, MIN_SCORE);
    const { eyeLeft, eyeRight } = ffhqKeypoints(face.landmarks);
    // Tilted in the photo by about 30 degrees (plus the person's own tilt)...
    const tilt = (Math.atan2(eyeRight[1] - eyeLeft[1], eyeRight[0] - eyeLeft[0]) * 180) / Math.PI;
    expect(Math.abs(tilt)).toBeGreaterThan(20);
    // ...and level once aligned.
    const aligned = await alignToQuad(tilted, ffhqCrop(face.landmarks).quad, RESOLUTION);
    const found = await redetectEyes(aligned, CANONICAL_LEFT);
    expect(found).not.toBeNull();
    expect(Math.abs(found!.eyeLeft[1] - found!.eyeRight[1])).toBeLessThan(6);
    expect(distance(found!.eyeLeft, CANONICAL_LEFT)).toBeLessThan(10);
  });
});

describe('buildDataset (faces mode)', () => {
  it('keeps one aligned face per photo and reports faceless, small and repeated photos', async () => {
    const photos = await Promise.all(DEMO_PHOTOS.slice(0, 3).map((p) => readFile(p)));
    // The same photo re-encoded: a duplicate. The fourth photo shrunk: its faces are too small.
    const reencoded = await sharp(photos[0]).resize(1600).jpeg({ quality: 70 }).toBuffer();
    const shrunk = await sharp(await readFile(DEMO_PHOTOS[3]))
      .resize(480)
      .jpeg()
      .toBuffer();
    const zip = buildZip([
      ...photos.map((data, i) => ({ name: `photos/${i + 1}.jpg`, data })),
      { name: 'photos/again.jpg', data: reencoded },
      { name: 'photos/small.jpg', data: shrunk },
      { name: 'photos/pattern.png', data: await blockPicture(3, 640, 480) },
    ]);
    const input = join(tmp.path, 'photos.zip');
    await writeFile(input, zip);
    const outDir = join(tmp.path, 'faces');
    const report = await buildDataset({ input, outDir, resolution: RESOLUTION, align: 'faces' });

    expect(report.entries.map((e) => [e.source, e.status])).toEqual([
      ['photos/1.jpg', 'kept'],
      ['photos/2.jpg', 'kept'],
      ['photos/3.jpg', 'kept'],
      ['photos/again.jpg', 'duplicate'],
      ['photos/small.jpg', 'too-small'],
      ['photos/pattern.png', 'no-face'],
    ]);
    const [first] = report.entries;
    expect(first.face).toMatchObject({ index: 0, count: 3 });
    expect(first.transform?.kind).toBe('ffhq');
    expect(report.entries[3].duplicateOf).toBe('images/000000.png');
    expect(report.entries[4].reason).toMatch(/^face crop is \d+ px across, needs 128$/);
    expect(await listTree(outDir)).toEqual([
      'contact-sheet.png',
      'images',
      'images/000000.png',
      'images/000001.png',
      'images/000002.png',
      'manifest.json',
      'stats.json',
    ]);
    const meta = await sharp(join(outDir, 'images/000001.png')).metadata();
    expect([meta.width, meta.height]).toEqual([RESOLUTION, RESOLUTION]);
  });

  it('keeps every face, or skips group photos, as asked', async () => {
    const input = join(tmp.path, 'group.zip');
    await writeFile(input, buildZip([{ name: 'group.jpg', data: await readFile(DEMO_PHOTOS[0]) }]));
    await detectFaces({ data: Buffer.alloc(64 * 64 * 3), width: 64, height: 64 }, MIN_SCORE); // loads the models
    const tensorsBefore = tf.memory().numTensors;
    const all = await buildDataset({
      input,
      outDir: join(tmp.path, 'all'),
      resolution: 128,
      align: 'faces',
      multipleFaces: 'all',
    });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(all.entries.map((e) => [e.status, e.face?.index, e.face?.count])).toEqual([
      ['kept', 0, 3],
      ['kept', 1, 3],
      ['kept', 2, 3],
    ]);
    // Faces come largest first.
    const sizes = all.entries.map((e) => e.face!.cropSize);
    expect([...sizes].sort((a, b) => b - a)).toEqual(sizes);

    const skip = await buildDataset({
      input,
      outDir: join(tmp.path, 'skip'),
      resolution: 128,
      align: 'faces',
      multipleFaces: 'skip',
      minImages: 0,
    });
    expect(skip.entries).toEqual([
      {
        source: 'group.jpg',
        status: 'several-faces',
        reason: '3 faces',
        sourceSize: { width: 1920, height: 1280 },
      },
    ]);
    expect(skip.contactSheet).toBeNull();
  });
});
