// One PNG with the kept images side by side, for a person to glance over before training starts.
// At most CONTACT_SHEET_MAX_IMAGES thumbnails on a sheet at most SHEET_MAX_SIDE wide, so it stays a
// few MiB (a Discord attachment) and a few tens of MiB of memory whatever the dataset size.

import sharp from 'sharp';
import { rawInput, toRgb } from './image.ts';

export const CONTACT_SHEET_MAX_IMAGES = 400;
const SHEET_MAX_SIDE = 2048;
const THUMB_MAX = 128;
const GAP = 2;
const BACKGROUND = 32;

export interface ContactSheetLayout {
  columns: number;
  rows: number;
  thumb: number;
  width: number;
  height: number;
}

export function contactSheetLayout(count: number): ContactSheetLayout {
  const columns = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / columns);
  const thumb = Math.min(THUMB_MAX, Math.floor((SHEET_MAX_SIDE - GAP) / columns) - GAP);
  return { columns, rows, thumb, width: GAP + columns * (thumb + GAP), height: GAP + rows * (thumb + GAP) };
}

/** The strip along the bottom of a centre-cropped thumbnail (auto alignment): orange. */
export const CENTRED_MARK_RGB = [255, 150, 0] as const;

/**
 * Writes the sheet of the first CONTACT_SHEET_MAX_IMAGES `files`; returns how many it shows.
 * `centred[i]` marks file i as centre-cropped rather than aligned on a detected face.
 */
export async function writeContactSheet(
  files: string[],
  outPath: string,
  centred?: readonly boolean[],
): Promise<number> {
  const shown = files.slice(0, CONTACT_SHEET_MAX_IMAGES);
  if (shown.length === 0) return 0;
  const layout = contactSheetLayout(shown.length);
  const canvas = Buffer.alloc(layout.width * layout.height * 3, BACKGROUND);
  for (const [i, file] of shown.entries()) {
    const thumb = await toRgb(sharp(file).resize(layout.thumb, layout.thumb, { fit: 'fill' }));
    const left = GAP + (i % layout.columns) * (layout.thumb + GAP);
    const top = GAP + Math.floor(i / layout.columns) * (layout.thumb + GAP);
    for (let y = 0; y < layout.thumb; y++) {
      const rowBytes = layout.thumb * 3;
      thumb.data.copy(canvas, ((top + y) * layout.width + left) * 3, y * rowBytes, (y + 1) * rowBytes);
    }
    if (centred?.[i]) markThumb(canvas, layout, left, top);
  }
  await rawInput({ data: canvas, width: layout.width, height: layout.height }).png().toFile(outPath);
  return shown.length;
}

/** Paints the bottom eighth of one thumbnail (at least 2 px) in CENTRED_MARK_RGB. */
function markThumb(canvas: Buffer, layout: ContactSheetLayout, left: number, top: number): void {
  const height = Math.max(2, Math.round(layout.thumb / 8));
  for (let y = layout.thumb - height; y < layout.thumb; y++) {
    for (let x = 0; x < layout.thumb; x++) {
      const at = ((top + y) * layout.width + left + x) * 3;
      canvas[at] = CENTRED_MARK_RGB[0];
      canvas[at + 1] = CENTRED_MARK_RGB[1];
      canvas[at + 2] = CENTRED_MARK_RGB[2];
    }
  }
}
