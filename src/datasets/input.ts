// Picks the reader for an input path by what it is (folder, or a file's first bytes), never by
// its extension.

import { open, stat } from 'node:fs/promises';
import { DatasetError } from './errors.ts';
import { openFolder } from './folder-source.ts';
import type { ArchiveLimits } from './limits.ts';
import { sniffArchive } from './sniff.ts';
import type { InputSource } from './source.ts';
import { openTar } from './tar-source.ts';
import { openZip } from './zip-source.ts';

const UNSUPPORTED_HINT = 'give a .zip, .tar.gz or .tar archive, or a folder of JPEG/PNG/WebP/GIF images';

export async function openInput(input: string, limits: ArchiveLimits): Promise<InputSource> {
  const info = await stat(input).catch(() => null);
  if (!info) throw new DatasetError(`input not found: ${input}`);
  if (info.isDirectory()) return openFolder(input, limits);
  if (!info.isFile()) throw new DatasetError(`input is not a file or folder: ${input}`, UNSUPPORTED_HINT);

  const head = Buffer.alloc(512);
  const file = await open(input, 'r');
  try {
    await file.read(head, 0, head.length, 0);
  } finally {
    await file.close();
  }
  const format = sniffArchive(head);
  if (format === 'zip') return openZip(input, limits);
  if (format === 'gzip') return openTar(input, true, limits);
  if (format === 'tar') return openTar(input, false, limits);
  throw new DatasetError(
    format ? `unsupported archive format: ${format}` : `input is not a zip or tar archive: ${input}`,
    UNSUPPORTED_HINT,
  );
}
