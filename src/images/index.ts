// Images out of the generator and into files or Discord attachments.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import { type EncodedImage, FILE_EXTENSIONS, type ImageFormat } from './encode.ts';

export { blankImage, hstack, pasteImage, type Rgb, resizeImage, resizeToHeight } from './compose.ts';
export {
  DISCORD_UPLOAD_LIMIT,
  type EncodedImage,
  type EncodeOptions,
  encodeUnderLimit,
  FILE_EXTENSIONS,
  type ImageFormat,
  MIME_TYPES,
} from './encode.ts';
export { DEFAULT_GRID_BACKGROUND, type GridOptions, renderGrid } from './grid.ts';
export { type RgbImage, tensorToRgb, toUint8Pixel } from './tensor-image.ts';

const IMAGE_EXTENSIONS = new Set(['.png', '.webp', '.jpg', '.jpeg']);

/**
 * `path` with the extension of `format`: an image extension that names another format is replaced
 * (a grid asked for as .png may have had to become WebP), any other extension is kept and appended to.
 */
export function pathForFormat(path: string, format: ImageFormat): string {
  const ext = extname(path);
  const wanted = FILE_EXTENSIONS[format];
  if (ext.toLowerCase() === wanted || (format === 'jpeg' && ext.toLowerCase() === '.jpeg')) return path;
  if (IMAGE_EXTENSIONS.has(ext.toLowerCase())) return path.slice(0, -ext.length) + wanted;
  return path + wanted;
}

/**
 * Writes an encoded image atomically (temporary file + rename, so a reader never sees half a file)
 * under a name whose extension matches its format. Returns the path written.
 */
export async function writeImage(path: string, encoded: EncodedImage): Promise<string> {
  const target = pathForFormat(path, encoded.format);
  await mkdir(dirname(target), { recursive: true });
  const temporary = `${target}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, encoded.buffer);
    await rename(temporary, target);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
  return target;
}
