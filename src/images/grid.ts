// Labelled image grids (seed sheets, base | style | blend comparisons, blend matrices). Tiles are
// pasted into a raw canvas; labels are SVG text that sharp (librsvg + fontconfig) rasterises with
// whatever sans-serif font the system has, so no font files ship with the project.
import { UserError } from '../errors.ts';
import { blankImage, pasteImage, pipelineToRgb, type Rgb, rawPipeline, resizeToHeight } from './compose.ts';
import type { RgbImage } from './tensor-image.ts';

export interface GridOptions {
  /** Tiles row by row (rows may differ in length). Give either `rows` or `tiles`. */
  rows?: RgbImage[][];
  /** Tiles in reading order, laid out `columns` wide; a nested array is taken as `rows`. */
  tiles?: RgbImage[] | RgbImage[][];
  /** Columns for a flat `tiles` list; default: about square. */
  columns?: number;
  /** One label left of each row. */
  rowLabels?: string[];
  /** One label above each column. */
  columnLabels?: string[];
  /** A caption under each tile, in reading order (missing or empty ones are left blank). */
  tileLabels?: string[];
  title?: string;
  /** Height every tile is resized to (the width follows its aspect ratio); default: as given. */
  tileSize?: number;
  /** Pixels between tiles and around the grid. */
  gap?: number;
  background?: Rgb;
  /** Default: light on dark backgrounds, dark on light ones. */
  textColor?: Rgb;
}

export const DEFAULT_GRID_BACKGROUND: Rgb = { r: 32, g: 34, b: 37 };
const DEFAULT_GAP = 6;
const MIN_TILE_SIZE = 8;
const MAX_TILE_SIZE = 4096;
// libvips' default pixel limit for one image; a larger grid could not be encoded anyway.
const MAX_GRID_PIXELS = 0x3fff * 0x3fff;
const FONT_FAMILY = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";
// Estimated advance widths in em, generous so that estimated text never overflows its band.
const NARROW_CHAR_EM = 0.62;
const WIDE_CHAR_EM = 1.05;

interface Band {
  text: string;
  /** Box the text is centred in (or right-aligned in, for row labels). */
  left: number;
  top: number;
  width: number;
  height: number;
  anchor: 'middle' | 'end';
  fontSize: number;
  bold?: boolean;
}

/** Renders the grid to packed RGB (encode it with `encodeUnderLimit`). */
export async function renderGrid(opts: GridOptions): Promise<RgbImage> {
  const rawRows = gridRows(opts);
  if (opts.tileSize !== undefined) assertTileSize(opts.tileSize);
  const rows = await Promise.all(
    rawRows.map((row) =>
      Promise.all(row.map((tile) => (opts.tileSize ? resizeToHeight(tile, opts.tileSize) : tile))),
    ),
  );
  const columnCount = Math.max(...rows.map((row) => row.length));
  checkLabelCount('rowLabels', opts.rowLabels, rows.length);
  checkLabelCount('columnLabels', opts.columnLabels, columnCount);
  const tileCount = rows.reduce((sum, row) => sum + row.length, 0);
  if (opts.tileLabels && opts.tileLabels.length > tileCount) {
    throw new Error(`${opts.tileLabels.length} tileLabels for ${tileCount} tiles`);
  }

  const gap = opts.gap ?? DEFAULT_GAP;
  if (!(Number.isInteger(gap) && gap >= 0))
    throw new Error(`gap must be a whole number of pixels, got ${gap}`);
  const cellWidth = Math.max(...rows.flat().map((t) => t.width));
  const cellHeight = Math.max(...rows.flat().map((t) => t.height));
  const fontSize = Math.min(32, Math.max(12, Math.round(Math.min(cellWidth, cellHeight) * 0.1)));
  const titleFontSize = Math.round(fontSize * 1.3);

  const hasTileLabels = (opts.tileLabels ?? []).some((label) => label);
  const titleHeight = opts.title ? Math.round(titleFontSize * 1.8) : 0;
  const columnLabelHeight = opts.columnLabels ? Math.round(fontSize * 1.8) : 0;
  const tileLabelHeight = hasTileLabels ? Math.round(fontSize * 1.6) : 0;
  const rowLabelWidth = opts.rowLabels
    ? Math.min(
        Math.ceil(Math.max(...opts.rowLabels.map((l) => textWidth(l, fontSize)))) + fontSize,
        Math.max(cellWidth * 2, fontSize * 8),
      )
    : 0;
  const rowPitch = cellHeight + tileLabelHeight + gap;
  const columnPitch = cellWidth + gap;
  const gridLeft = gap + rowLabelWidth;
  const gridTop = gap + titleHeight + columnLabelHeight;
  const width = gridLeft + columnCount * columnPitch;
  const height = gridTop + rows.length * rowPitch;
  if (width * height > MAX_GRID_PIXELS) {
    throw new UserError(
      `the grid would be ${width}x${height} pixels, more than can be encoded`,
      'use fewer images or a smaller tile size',
    );
  }

  const background = opts.background ?? DEFAULT_GRID_BACKGROUND;
  const canvas = blankImage(width, height, background);
  const bands: Band[] = [];
  if (opts.title) {
    bands.push({
      text: opts.title,
      left: gap,
      top: gap,
      width: width - 2 * gap,
      height: titleHeight,
      anchor: 'middle',
      // A narrow grid (three 32 px models side by side) gets a smaller title rather than a cut one.
      fontSize: fittedFontSize(cleanLabel(opts.title), width - 2 * gap, titleFontSize, MIN_TITLE_FONT_SIZE),
      bold: true,
    });
  }
  let tileIndex = 0;
  for (const [r, row] of rows.entries()) {
    const cellTop = gridTop + r * rowPitch;
    for (const [c, tile] of row.entries()) {
      const cellLeft = gridLeft + c * columnPitch;
      // Tiles smaller than the largest one are centred in their cell.
      pasteImage(
        canvas,
        tile,
        cellLeft + Math.floor((cellWidth - tile.width) / 2),
        cellTop + Math.floor((cellHeight - tile.height) / 2),
      );
      const caption = opts.tileLabels?.[tileIndex++];
      if (caption) {
        bands.push({
          text: caption,
          left: cellLeft,
          top: cellTop + cellHeight,
          width: cellWidth,
          height: tileLabelHeight,
          anchor: 'middle',
          fontSize,
        });
      }
    }
    const rowLabel = opts.rowLabels?.[r];
    if (rowLabel) {
      bands.push({
        text: rowLabel,
        left: gap,
        top: cellTop,
        width: rowLabelWidth - Math.round(fontSize / 2),
        height: cellHeight,
        anchor: 'end',
        fontSize,
      });
    }
  }
  for (const [c, label] of (opts.columnLabels ?? []).entries()) {
    if (!label) continue;
    bands.push({
      text: label,
      left: gridLeft + c * columnPitch,
      top: gap + titleHeight,
      width: cellWidth,
      height: columnLabelHeight,
      anchor: 'middle',
      fontSize,
    });
  }
  if (bands.length === 0) return canvas;

  const color = opts.textColor ?? contrastingText(background);
  return pipelineToRgb(rawPipeline(canvas).composite(labelOverlays(bands, color)));
}

function gridRows(opts: GridOptions): RgbImage[][] {
  if (opts.rows && opts.tiles) throw new Error('give renderGrid either rows or tiles, not both');
  const given = opts.rows ?? opts.tiles;
  if (!given || given.length === 0) throw new Error('renderGrid needs at least one tile');
  let rows: RgbImage[][];
  if (isNested(given)) {
    rows = given;
  } else {
    const columns = opts.columns ?? Math.ceil(Math.sqrt(given.length));
    if (!(Number.isInteger(columns) && columns > 0)) {
      throw new UserError(`the number of grid columns must be a positive whole number, got ${columns}`);
    }
    rows = [];
    for (let i = 0; i < given.length; i += columns) rows.push(given.slice(i, i + columns));
  }
  if (rows.some((row) => row.length === 0)) throw new Error('renderGrid got an empty row');
  return rows;
}

function isNested(tiles: RgbImage[] | RgbImage[][]): tiles is RgbImage[][] {
  return Array.isArray(tiles[0]);
}

function assertTileSize(size: number): void {
  if (!(Number.isInteger(size) && size >= MIN_TILE_SIZE && size <= MAX_TILE_SIZE)) {
    throw new UserError(
      `tile size must be a whole number from ${MIN_TILE_SIZE} to ${MAX_TILE_SIZE}, got ${size}`,
    );
  }
}

function checkLabelCount(name: string, labels: string[] | undefined, expected: number): void {
  if (labels && labels.length !== expected)
    throw new Error(`${labels.length} ${name} for ${expected} entries`);
}

/** Estimated rendered width; wide (CJK, emoji) characters count about one em. */
function textWidth(text: string, fontSize: number): number {
  let em = 0;
  for (const ch of text) em += (ch.codePointAt(0) ?? 0) >= 0x2e80 ? WIDE_CHAR_EM : NARROW_CHAR_EM;
  return em * fontSize;
}

/** Smallest size a title shrinks to before it is cut with an ellipsis. */
const MIN_TITLE_FONT_SIZE = 10;

/** The largest font size from `preferred` down to `min` at which `text` fits `maxWidth`. */
export function fittedFontSize(text: string, maxWidth: number, preferred: number, min: number): number {
  const fits = Math.floor(maxWidth / (textWidth(text, 1) || 1));
  return Math.max(min, Math.min(preferred, fits));
}

/** Cuts `text` with an ellipsis so that its estimated width fits `maxWidth`. */
function fitText(text: string, maxWidth: number, fontSize: number): string {
  if (textWidth(text, fontSize) <= maxWidth) return text;
  const chars = [...text];
  while (chars.length > 0 && textWidth(`${chars.join('')}…`, fontSize) > maxWidth) chars.pop();
  return chars.length > 0 ? `${chars.join('').trimEnd()}…` : '';
}

/**
 * One SVG per horizontal strip of labels (a row of captions, the column headers, a row label)
 * rather than one canvas-sized SVG, whose RGBA raster would be as large as the grid itself.
 */
function labelOverlays(bands: Band[], color: Rgb): Array<{ input: Buffer; left: number; top: number }> {
  const strips = new Map<string, Band[]>();
  for (const band of bands) {
    const key = `${band.top}:${band.height}`;
    strips.set(key, [...(strips.get(key) ?? []), band]);
  }
  const fill = `rgb(${color.r},${color.g},${color.b})`;
  return [...strips.values()].map((strip) => {
    const left = Math.min(...strip.map((b) => b.left));
    const right = Math.max(...strip.map((b) => b.left + b.width));
    const { top, height } = strip[0];
    const texts = strip.map((band) => {
      const text = fitText(cleanLabel(band.text), band.width, band.fontSize);
      const x = (band.anchor === 'middle' ? band.left + band.width / 2 : band.left + band.width) - left;
      // Baseline placed so that the x-height sits in the middle of the band.
      const y = band.height / 2 + band.fontSize * 0.36;
      const weight = band.bold ? ' font-weight="bold"' : '';
      return `<text x="${x}" y="${y}" font-size="${band.fontSize}" text-anchor="${band.anchor}"${weight}>${escapeXml(text)}</text>`;
    });
    const svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="${right - left}" height="${height}">` +
      `<g font-family="${FONT_FAMILY}" fill="${fill}">${texts.join('')}</g></svg>`;
    return { input: Buffer.from(svg), left, top };
  });
}

/** Control characters are not allowed in XML; line breaks would be lost anyway. */
function cleanLabel(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function contrastingText(background: Rgb): Rgb {
  const luminance = (0.2126 * background.r + 0.7152 * background.g + 0.0722 * background.b) / 255;
  return luminance > 0.5 ? { r: 20, g: 20, b: 20 } : { r: 235, g: 235, b: 235 };
}
