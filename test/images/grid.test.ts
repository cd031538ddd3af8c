import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { blankImage, hstack } from '../../src/images/compose.ts';
import { encodeUnderLimit } from '../../src/images/encode.ts';
import { DEFAULT_GRID_BACKGROUND, fittedFontSize, renderGrid } from '../../src/images/grid.ts';
import type { RgbImage } from '../../src/images/tensor-image.ts';

const RED = { r: 255, g: 0, b: 0 };
const BG = DEFAULT_GRID_BACKGROUND;

function pixel(img: RgbImage, x: number, y: number): [number, number, number] {
  const i = (y * img.width + x) * 3;
  return [img.data[i], img.data[i + 1], img.data[i + 2]];
}

const isRed = (p: number[]) => p[0] > 200 && p[1] < 60 && p[2] < 60;
// The default text colour on the dark default background is light gray.
const isText = (p: number[]) => p[0] > BG.r + 80 && p[1] > BG.g + 80 && p[2] > BG.b + 80;

/** Bounding box of the red tile pixels. */
function redBox(img: RgbImage) {
  let [left, top, right, bottom] = [img.width, img.height, -1, -1];
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++)
      if (isRed(pixel(img, x, y))) {
        left = Math.min(left, x);
        top = Math.min(top, y);
        right = Math.max(right, x);
        bottom = Math.max(bottom, y);
      }
  return { left, top, right, bottom };
}

function countText(img: RgbImage, x0: number, y0: number, x1: number, y1: number): number {
  let n = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (isText(pixel(img, x, y))) n++;
  return n;
}

describe('renderGrid', () => {
  it('lays out a flat list in rows of `columns`, gap pixels apart, empty slots left blank', async () => {
    const tiles = Array.from({ length: 5 }, () => blankImage(20, 10, RED));
    const grid = await renderGrid({ tiles, columns: 2, gap: 4 });
    expect([grid.width, grid.height]).toEqual([4 + 2 * (20 + 4), 4 + 3 * (10 + 4)]);
    expect(grid.data.length).toBe(grid.width * grid.height * 3);
    expect(pixel(grid, 4, 4)).toEqual([255, 0, 0]); // first tile's corner
    expect(pixel(grid, 23, 13)).toEqual([255, 0, 0]); // and its opposite corner
    expect(pixel(grid, 24, 4)).toEqual([BG.r, BG.g, BG.b]); // the gap after it
    expect(pixel(grid, 28, 4)).toEqual([255, 0, 0]); // second column
    expect(pixel(grid, 28 + 10, 4 + 2 * 14 + 5)).toEqual([BG.r, BG.g, BG.b]); // missing 6th tile
  });

  it('takes rows of tiles and centres smaller tiles in their cell', async () => {
    const grid = await renderGrid({
      rows: [[blankImage(10, 10, RED), blankImage(4, 4, RED)]],
      gap: 2,
      background: { r: 0, g: 0, b: 255 },
    });
    expect([grid.width, grid.height]).toEqual([2 + 2 * 12, 2 + 12]);
    expect(pixel(grid, 14 + 3, 2 + 3)).toEqual([255, 0, 0]); // centre of the small tile
    expect(pixel(grid, 14, 2)).toEqual([0, 0, 255]); // corner of its cell stays background
  });

  it('draws title, column, row and tile labels in bands around the tiles', async () => {
    const tiles = Array.from({ length: 4 }, () => blankImage(96, 96, RED));
    const plain = await renderGrid({ tiles, columns: 2 });
    const labelled = await renderGrid({
      rows: [tiles.slice(0, 2), tiles.slice(2)],
      title: 'base × style',
      columnLabels: ['base', 'style'],
      rowLabels: ['seed 1', 'seed 2'],
      tileLabels: ['a', 'b', 'c', 'd'],
    });
    expect(labelled.width).toBeGreaterThan(plain.width);
    expect(labelled.height).toBeGreaterThan(plain.height);
    expect(countText(plain, 0, 0, plain.width, plain.height)).toBe(0);

    const box = redBox(labelled);
    expect(countText(labelled, 0, 0, labelled.width, box.top), 'title and column labels').toBeGreaterThan(50);
    expect(countText(labelled, 0, box.top, box.left, box.bottom), 'row labels').toBeGreaterThan(50);
    // Captions sit below each tile row: the last row's caption is below the red box.
    expect(
      countText(labelled, box.left, box.bottom + 1, box.right, labelled.height),
      'captions',
    ).toBeGreaterThan(5);
  });

  it('shrinks a title too wide for a narrow grid instead of cutting it (the demo blend)', async () => {
    const title = 'demo-faces × demo-lorelei e3 · swap ≥16 (texture)';
    const textHeight = async (columns: number) => {
      const grid = await renderGrid({
        tiles: Array.from({ length: columns }, () => blankImage(128, 128, RED)),
        columns,
        title,
      });
      const top = redBox(grid).top;
      const rows = Array.from({ length: top }, (_, y) => countText(grid, 0, y, grid.width, y + 1) > 0);
      return rows.lastIndexOf(true) - rows.indexOf(true) + 1;
    };
    // Three 128 px columns are too narrow for the title at its usual size: its letters get smaller.
    expect(await textHeight(3)).toBeLessThan(await textHeight(8));
    expect(fittedFontSize(title, 3 * 134 - 6, 17, 10)).toBeLessThan(17);
    expect(fittedFontSize(title, 3 * 134 - 6, 17, 10)).toBeGreaterThanOrEqual(10);
    expect(fittedFontSize('short', 400, 17, 10)).toBe(17);
    expect(fittedFontSize(title.repeat(10), 400, 17, 10)).toBe(10);
  });

  it('escapes labels so that markup and control characters cannot break the SVG', async () => {
    const grid = await renderGrid({
      tiles: [blankImage(64, 64, RED)],
      tileLabels: ['<b>&"\'\u0000\n'],
      title: '</svg><svg>',
    });
    expect(countText(grid, 0, 0, grid.width, grid.height)).toBeGreaterThan(0);
  });

  it('upscales tiny tiles with nearest neighbour and larger ones smoothly', async () => {
    // Left half black, right half white: nearest neighbour keeps only those two values.
    const halves = (size: number): RgbImage => {
      const img = blankImage(size, size, { r: 0, g: 0, b: 0 });
      for (let y = 0; y < size; y++) img.data.fill(255, (y * size + size / 2) * 3, (y + 1) * size * 3);
      return img;
    };
    const distinct = (img: RgbImage) => new Set(img.data).size;
    const tiny = await renderGrid({ tiles: [halves(8)], tileSize: 64, gap: 0 });
    expect([tiny.width, tiny.height]).toEqual([64, 64]);
    expect(distinct(tiny)).toBe(2);
    const large = await renderGrid({ tiles: [halves(80)], tileSize: 160, gap: 0 });
    expect([large.width, large.height]).toEqual([160, 160]);
    expect(distinct(large)).toBeGreaterThan(2);
  });

  it('produces an image that encodes and decodes at its size', async () => {
    const grid = await renderGrid({ tiles: [blankImage(32, 32, RED)], title: 't', tileSize: 128 });
    const encoded = await encodeUnderLimit(grid);
    const meta = await sharp(encoded.buffer).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', grid.width, grid.height]);
  });

  it('refuses bad input clearly', async () => {
    const tile = blankImage(8, 8, RED);
    await expect(renderGrid({ tiles: [] })).rejects.toThrow(/at least one tile/);
    await expect(renderGrid({ tiles: [tile], rows: [[tile]] })).rejects.toThrow(/either rows or tiles/);
    await expect(renderGrid({ tiles: [tile, tile], rowLabels: ['a', 'b'] })).rejects.toThrow(
      /2 rowLabels for 1/,
    );
    await expect(renderGrid({ tiles: [tile], columnLabels: ['a', 'b'] })).rejects.toThrow(
      /2 columnLabels for 1/,
    );
    await expect(renderGrid({ tiles: [tile], tileSize: Number.NaN })).rejects.toThrow(UserError);
    await expect(renderGrid({ tiles: [tile], columns: 0 })).rejects.toThrow(UserError);
    await expect(
      renderGrid({ tiles: [{ width: 8, height: 8, data: Buffer.alloc(10) }], tileSize: 16 }),
    ).rejects.toThrow(/needs 192 bytes/);
  });
});

describe('hstack', () => {
  it('puts images side by side at one height', async () => {
    const strip = await hstack([blankImage(10, 10, RED), blankImage(20, 10, { r: 0, g: 255, b: 0 })], 20, 3);
    expect([strip.width, strip.height]).toEqual([20 + 3 + 40, 20]);
    expect(pixel(strip, 0, 0)).toEqual([255, 0, 0]);
    expect(pixel(strip, 21, 0)).toEqual([0, 0, 0]);
    expect(pixel(strip, 23 + 39, 19)).toEqual([0, 255, 0]);
  });
});
