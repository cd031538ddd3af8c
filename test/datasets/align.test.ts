// The FFHQ crop geometry and the resampler, on synthetic inputs with known answers.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { dHash, hammingDistance } from '../../src/datasets/dhash.ts';
import { unsafePathReason } from '../../src/datasets/entry-path.ts';
import { applyAffine, ffhqCrop, invertAffine, quadAffine } from '../../src/datasets/ffhq.ts';
import { type RgbImage, toRgb } from '../../src/datasets/image.ts';
import { sniffArchive, sniffImage } from '../../src/datasets/sniff.ts';
import type { Point } from '../../src/datasets/types.ts';
import { alignToQuad, boxDownsample, reflectIndex, warpAffine } from '../../src/datasets/warp.ts';
import { blockPicture, buildTar } from './helpers/fixtures.ts';
import { buildZip } from './helpers/zip-writer.ts';

/** 68 landmarks where only the ones FFHQ reads matter: eye rings (36-47) and mouth corners (48, 54). */
function landmarksFor(eyeLeft: Point, eyeRight: Point, mouthLeft: Point, mouthRight: Point): Point[] {
  const points: Point[] = Array.from({ length: 68 }, () => [0, 0]);
  const ring = (centre: Point, start: number) => {
    for (let i = 0; i < 6; i++) {
      const angle = (i / 6) * 2 * Math.PI;
      points[start + i] = [centre[0] + 5 * Math.cos(angle), centre[1] + 3 * Math.sin(angle)];
    }
  };
  ring(eyeLeft, 36);
  ring(eyeRight, 42);
  points[48] = mouthLeft;
  points[54] = mouthRight;
  return points;
}

function rotate([x, y]: Point, angle: number, [cx, cy]: Point): Point {
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  return [cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy)];
}

describe('FFHQ crop', () => {
  it('builds the square FFHQ builds for an upright face', () => {
    // Eyes 40 px apart, mouth 40 px below them: x = eye_to_eye - rot(eye_to_mouth) = (80, 0),
    // scaled to max(2 * 40, 1.8 * 40) = 80; centre = eye_avg + 0.1 * eye_to_mouth = (100, 104).
    const crop = ffhqCrop(landmarksFor([80, 100], [120, 100], [90, 140], [110, 140]));
    const rounded = crop.quad.map(([x, y]) => [Math.round(x * 1e6) / 1e6, Math.round(y * 1e6) / 1e6]);
    expect(rounded).toEqual([
      [20, 24],
      [20, 184],
      [180, 184],
      [180, 24],
    ]);
    expect(crop.size).toBeCloseTo(160, 9);
    // Where the eyes land: x = 0.5 -+ (20 / 160), y = (100 - 24) / 160: FFHQ's (0.375, 0.475), (0.625, 0.475).
    const toOutput = invertAffine(quadAffine(crop.quad, 1));
    expect(applyAffine(toOutput, [80, 100])).toEqual([expect.closeTo(0.375, 9), expect.closeTo(0.475, 9)]);
    expect(applyAffine(toOutput, [120, 100])).toEqual([expect.closeTo(0.625, 9), expect.closeTo(0.475, 9)]);
  });

  it('follows the face when it is rotated, shifted and scaled', () => {
    const upright = landmarksFor([80, 100], [120, 100], [90, 140], [110, 140]);
    const angle = (35 * Math.PI) / 180;
    const moved = upright.map((p): Point => {
      const [x, y] = rotate(p, angle, [100, 100]);
      return [3 * x + 500, 3 * y - 40];
    });
    const a = ffhqCrop(upright);
    const b = ffhqCrop(moved);
    expect(b.size).toBeCloseTo(a.size * 3, 9);
    const outA = invertAffine(quadAffine(a.quad, 256));
    const outB = invertAffine(quadAffine(b.quad, 256));
    for (const index of [36, 39, 42, 45, 48, 54]) {
      const [ua, va] = applyAffine(outA, upright[index]);
      const [ub, vb] = applyAffine(outB, moved[index]);
      expect(ub).toBeCloseTo(ua, 9);
      expect(vb).toBeCloseTo(va, 9);
    }
  });

  it('sizes the crop by the eye-to-mouth distance for long faces', () => {
    // Mouth 60 px below 40 px-apart eyes: 1.8 * 60 = 108 > 2 * 40, so the half side is 108.
    const crop = ffhqCrop(landmarksFor([80, 100], [120, 100], [90, 160], [110, 160]));
    expect(crop.size).toBeCloseTo(216, 9);
  });

  it('inverts affine maps', () => {
    const m = quadAffine(ffhqCrop(landmarksFor([13, 40], [61, 52], [25, 97], [50, 104])).quad, 128);
    const p: Point = [17.5, 99.25];
    const back = applyAffine(invertAffine(m), applyAffine(m, p));
    expect(back[0]).toBeCloseTo(p[0], 9);
    expect(back[1]).toBeCloseTo(p[1], 9);
  });
});

describe('resampling', () => {
  it('mirrors indices like numpy.pad(mode="reflect")', () => {
    expect([-3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 10].map((i) => reflectIndex(i, 4))).toEqual([
      3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2,
    ]);
    expect(reflectIndex(-5, 1)).toBe(0);
  });

  it('reproduces the image under the identity map', async () => {
    const image = await toRgb(sharp(await blockPicture(8, 40, 30)));
    const same = warpAffine(image, [1, 0, 0, 0, 1, 0], 40, 30);
    expect(same.data.equals(image.data)).toBe(true);
  });

  it('box-averages blocks', () => {
    const image: RgbImage = {
      data: Buffer.from([0, 0, 0, 10, 10, 10, 20, 20, 20, 30, 30, 30]),
      width: 2,
      height: 2,
    };
    expect([...boxDownsample(image, 2).data]).toEqual([15, 15, 15]);
  });

  it('puts a source point where the crop transform says, through rotation and shrinking', async () => {
    // A white dot on black; crop a rotated square 4x larger than the output (shrink path).
    const width = 1200;
    const height = 900;
    const dot: Point = [655, 402];
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = -6; y <= 6; y++) {
      for (let x = -6; x <= 6; x++) {
        if (x * x + y * y <= 36)
          pixels.fill(
            255,
            ((dot[1] + y) * width + dot[0] + x) * 3,
            ((dot[1] + y) * width + dot[0] + x) * 3 + 3,
          );
      }
    }
    const image: RgbImage = { data: pixels, width, height };
    const centre: Point = [600, 450];
    const half = 256;
    const angle = (20 * Math.PI) / 180;
    const corner = (sx: number, sy: number) =>
      rotate([centre[0] + sx * half, centre[1] + sy * half], angle, centre);
    const quad = [corner(-1, -1), corner(-1, 1), corner(1, 1), corner(1, -1)] as [Point, Point, Point, Point];
    const resolution = 128;
    const out = await alignToQuad(image, quad, resolution);
    let sum = 0;
    let sx = 0;
    let sy = 0;
    for (let y = 0; y < resolution; y++) {
      for (let x = 0; x < resolution; x++) {
        const v = out.data[(y * resolution + x) * 3];
        sum += v;
        sx += v * (x + 0.5);
        sy += v * (y + 0.5);
      }
    }
    const expected = applyAffine(invertAffine(quadAffine(quad, resolution)), [dot[0] + 0.5, dot[1] + 0.5]);
    expect(Math.hypot(sx / sum - expected[0], sy / sum - expected[1])).toBeLessThan(0.1);
  });

  it('fills the part of the crop beyond the image border by reflection', async () => {
    // Horizontal ramp: value = 2 * x. A crop from x = -50 to 50 sees the ramp mirrored at x = 0.
    const width = 120;
    const height = 40;
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) pixels.fill(2 * x, (y * width + x) * 3, (y * width + x) * 3 + 3);
    const quad: [Point, Point, Point, Point] = [
      [-50, 0],
      [-50, 100],
      [50, 100],
      [50, 0],
    ];
    const out = await alignToQuad({ data: pixels, width, height }, quad, 100);
    const at = (x: number, y: number) => out.data[(y * 100 + x) * 3];
    // Output column u samples source x = u - 50 + 0.5 (pixel-centre index u - 50); reflect: |u - 50|.
    for (const u of [5, 20, 40, 60, 80, 95])
      expect(Math.abs(at(u, 10) - 2 * Math.abs(u - 50))).toBeLessThanOrEqual(1);
    // Rows below the image (y > 40) mirror rows inside: still the same ramp.
    expect(Math.abs(at(20, 90) - at(20, 10))).toBeLessThanOrEqual(1);
  });
});

describe('perceptual hash', () => {
  it('sees re-encoded and resized copies as near and different pictures as far', async () => {
    const original = await toRgb(sharp(await blockPicture(9, 256, 256)));
    const reencoded = await toRgb(
      sharp(
        await sharp(await blockPicture(9, 256, 256))
          .jpeg({ quality: 60 })
          .toBuffer(),
      ).resize(200, 200),
    );
    const other = await toRgb(sharp(await blockPicture(10, 256, 256)));
    const hash = await dHash(original);
    expect(hammingDistance(hash, await dHash(original))).toBe(0);
    expect(hammingDistance(hash, await dHash(reencoded))).toBeLessThanOrEqual(3);
    expect(hammingDistance(hash, await dHash(other))).toBeGreaterThan(12);
  });
});

describe('content sniffing and names', () => {
  it('recognises images and archives by their bytes, not their names', async () => {
    expect(sniffImage(await blockPicture(1, 16, 16, 'png'))).toBe('png');
    expect(sniffImage(await blockPicture(1, 16, 16, 'jpeg'))).toBe('jpeg');
    expect(sniffImage(await blockPicture(1, 16, 16, 'webp'))).toBe('webp');
    expect(sniffImage(await blockPicture(1, 16, 16, 'gif'))).toBe('gif');
    expect(sniffImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))).toBeNull();
    expect(sniffArchive(buildZip([]))).toBe('zip');
    expect(sniffArchive(await buildTar([{ name: 'a', data: 'x' }]))).toBe('gzip');
    expect(sniffArchive(await buildTar([{ name: 'a', data: 'x' }], false))).toBe('tar');
  });

  it('flags names that leave the archive', () => {
    expect(unsafePathReason('faces/a.png')).toBeNull();
    expect(unsafePathReason('faces/..a.png')).toBeNull();
    expect(unsafePathReason('faces/../../a.png')).toMatch(/leaves the archive/);
    expect(unsafePathReason('..\\a.png')).toMatch(/leaves the archive/);
    expect(unsafePathReason('/a.png')).toBe('absolute path');
    expect(unsafePathReason('d:/a.png')).toBe('absolute path');
  });
});
