import { randomFillSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { blankImage } from '../../src/images/compose.ts';
import { DISCORD_UPLOAD_LIMIT, type EncodedImage, encodeUnderLimit } from '../../src/images/encode.ts';
import { pathForFormat, writeImage } from '../../src/images/index.ts';
import type { RgbImage } from '../../src/images/tensor-image.ts';

/** Random pixels: incompressible, so PNG is about as large as the raw data. */
function noise(width: number, height: number): RgbImage {
  return { width, height, data: randomFillSync(Buffer.allocUnsafe(width * height * 3)) };
}

async function expectDecodable(encoded: EncodedImage, maxBytes: number) {
  expect(encoded.buffer.length).toBeLessThanOrEqual(maxBytes);
  const meta = await sharp(encoded.buffer).metadata();
  expect([meta.format, meta.width, meta.height]).toEqual([encoded.format, encoded.width, encoded.height]);
}

describe('encodeUnderLimit', () => {
  it('keeps PNG, lossless, when it fits', async () => {
    const image = blankImage(64, 48, { r: 10, g: 200, b: 30 });
    const encoded = await encodeUnderLimit(image);
    expect([encoded.format, encoded.width, encoded.height, encoded.scaled]).toEqual(['png', 64, 48, 1]);
    const decoded = await sharp(encoded.buffer).raw().toBuffer();
    expect(decoded.equals(image.data)).toBe(true);
  });

  it('falls back to WebP at full size when PNG is too large', async () => {
    const image = noise(256, 256);
    const maxBytes = 150_000; // PNG of this noise is about 197 kB
    const encoded = await encodeUnderLimit(image, { maxBytes });
    expect([encoded.format, encoded.scaled]).toEqual(['webp', 1]);
    await expectDecodable(encoded, maxBytes);
  });

  it('uses JPEG where WebP cannot go (sides over 16383 px)', async () => {
    const image = noise(16_400, 16);
    const maxBytes = 500_000; // PNG is about 790 kB
    const encoded = await encodeUnderLimit(image, { maxBytes });
    expect([encoded.format, encoded.width, encoded.scaled]).toEqual(['jpeg', 16_400, 1]);
    await expectDecodable(encoded, maxBytes);
  });

  it('downscales in 0.75 steps when no format fits at full size', async () => {
    const image = noise(256, 256);
    const maxBytes = 8_000;
    const encoded = await encodeUnderLimit(image, { maxBytes });
    const steps = Math.log(encoded.scaled) / Math.log(0.75);
    expect(steps).toBeGreaterThanOrEqual(1);
    expect(Math.abs(steps - Math.round(steps))).toBeLessThan(1e-9);
    expect(encoded.width).toBe(Math.round(256 * encoded.scaled));
    await expectDecodable(encoded, maxBytes);
  });

  it('starts with the preferred format', async () => {
    const encoded = await encodeUnderLimit(blankImage(32, 32, { r: 1, g: 2, b: 3 }), { prefer: 'jpeg' });
    expect(encoded.format).toBe('jpeg');
    await expectDecodable(encoded, DISCORD_UPLOAD_LIMIT);
  });

  it('fits a 2048x2048 noise image, whose PNG is over 12 MB, under the 10 MiB Discord limit', async () => {
    const encoded = await encodeUnderLimit(noise(2048, 2048));
    expect(encoded.format).not.toBe('png');
    await expectDecodable(encoded, DISCORD_UPLOAD_LIMIT);
  });

  it('says so when nothing fits', async () => {
    const attempt = encodeUnderLimit(noise(64, 64), { maxBytes: 50 });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/cannot fit a 64x64 image into 50 bytes/);
  });
});

describe('writeImage', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('names files after their actual format', () => {
    expect(pathForFormat('out/grid.png', 'png')).toBe('out/grid.png');
    expect(pathForFormat('out/grid.png', 'webp')).toBe('out/grid.webp');
    expect(pathForFormat('out/grid.PNG', 'jpeg')).toBe('out/grid.jpg');
    expect(pathForFormat('grid.jpeg', 'jpeg')).toBe('grid.jpeg');
    expect(pathForFormat('grid', 'png')).toBe('grid.png');
  });

  it('writes atomically into new folders and leaves no temporary file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'facestyle-images-'));
    dirs.push(dir);
    const encoded = await encodeUnderLimit(noise(64, 64), { maxBytes: 10_000 });
    expect(encoded.format).toBe('webp');
    const written = await writeImage(join(dir, 'nested', 'grid.png'), encoded);
    expect(written).toBe(join(dir, 'nested', 'grid.webp'));
    expect((await readFile(written)).equals(encoded.buffer)).toBe(true);
    expect(await readdir(join(dir, 'nested'))).toEqual(['grid.webp']);
  });
});
