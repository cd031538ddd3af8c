// What a file is, from its first bytes: names and extensions in an upload are not trusted.

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif';
export type ArchiveFormat = 'zip' | 'gzip' | 'tar' | '7z' | 'rar' | 'bzip2' | 'xz' | 'zstd';

const startsWith = (data: Uint8Array, bytes: number[], offset = 0) =>
  data.length >= offset + bytes.length && bytes.every((byte, i) => data[offset + i] === byte);
const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));

export function sniffImage(data: Uint8Array): ImageFormat | null {
  if (startsWith(data, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(data, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(data, ascii('RIFF')) && startsWith(data, ascii('WEBP'), 8)) return 'webp';
  if (startsWith(data, ascii('GIF87a')) || startsWith(data, ascii('GIF89a'))) return 'gif';
  return null;
}

export function sniffArchive(data: Uint8Array): ArchiveFormat | null {
  // Local file header, or the end record alone (an empty zip).
  if (startsWith(data, [0x50, 0x4b, 0x03, 0x04]) || startsWith(data, [0x50, 0x4b, 0x05, 0x06])) return 'zip';
  if (startsWith(data, [0x1f, 0x8b])) return 'gzip';
  if (startsWith(data, ascii('ustar'), 257)) return 'tar';
  if (startsWith(data, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return '7z';
  if (startsWith(data, ascii('Rar!\x1a\x07'))) return 'rar';
  if (startsWith(data, ascii('BZh'))) return 'bzip2';
  if (startsWith(data, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (startsWith(data, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  return null;
}

const ARCHIVE_EXTENSIONS = /\.(zip|tar|tgz|gz|7z|rar|bz2|tbz2?|xz|txz|zst|jar|cbz|cbr)$/i;

/** Nested archives are skipped unread: unpacking them would multiply every limit. */
export function looksLikeArchiveName(name: string): boolean {
  return ARCHIVE_EXTENSIONS.test(name);
}
