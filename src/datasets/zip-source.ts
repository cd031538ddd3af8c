// Zip input through yauzl: the central directory is read first, so entry count, declared sizes and
// overlapping entries are refused before a single byte is inflated; each entry is then read on
// demand with its declared size enforced by yauzl (validateEntrySizes) and by readBounded.

import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { isSystemMetadata, unsafePathReason } from './entry-path.ts';
import { DatasetError } from './errors.ts';
import { type ArchiveLimits, formatBytes, RATIO_CHECK_MIN_BYTES } from './limits.ts';
import { looksLikeArchiveName } from './sniff.ts';
import { errorText, type InputSource, ReadBudget, readBounded, type SourceItem, skipped } from './source.ts';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

interface NamedEntry {
  entry: Entry;
  name: string;
}

export async function openZip(path: string, limits: ArchiveLimits): Promise<InputSource> {
  let zip: ZipFile;
  try {
    // decodeStrings: false because yauzl would otherwise reject the whole archive on the first
    // `../` name; we decode and judge names ourselves and skip only the offending entries.
    zip = await yauzl.openPromise(path, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
    });
  } catch (err) {
    throw new DatasetError(`not a readable zip file: ${errorText(err)}`);
  }
  try {
    const budget = new ReadBudget(limits);
    budget.countEntries(zip.entryCount);
    const entries = await readCentralDirectory(zip);
    checkOverlaps(entries);
    budget.countBytes(entries.reduce((sum, { entry }) => sum + entry.uncompressedSize, 0));
    const visible = entries.filter(({ name }) => !name.endsWith('/') && !isSystemMetadata(name));
    return { format: 'zip', total: visible.length, items: () => readEntries(zip, visible, limits) };
  } catch (err) {
    zip.close();
    throw err;
  }
}

async function readCentralDirectory(zip: ZipFile): Promise<NamedEntry[]> {
  const entries: NamedEntry[] = [];
  try {
    for await (const entry of zip.eachEntry()) {
      const raw = entry.fileName as unknown as Buffer;
      const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, false);
      entries.push({ entry, name });
    }
  } catch (err) {
    throw new DatasetError(`damaged zip file: ${errorText(err)}`);
  }
  return entries;
}

// Many central-directory records pointing at the same data is how non-recursive zip bombs reach
// a huge total from a small file; no archiver writes that.
function checkOverlaps(entries: NamedEntry[]): void {
  const byOffset = new Map<number, string>();
  for (const { entry, name } of entries) {
    if (entry.compressedSize === 0 && entry.uncompressedSize === 0) continue;
    const other = byOffset.get(entry.relativeOffsetOfLocalHeader);
    if (other !== undefined) {
      throw new DatasetError(`zip entries "${other}" and "${name}" share their data (a zip bomb technique)`);
    }
    byOffset.set(entry.relativeOffsetOfLocalHeader, name);
  }
}

async function* readEntries(
  zip: ZipFile,
  entries: NamedEntry[],
  limits: ArchiveLimits,
): AsyncGenerator<SourceItem> {
  try {
    for (const { entry, name } of entries) yield await readEntry(zip, entry, name, limits);
  } finally {
    zip.close();
  }
}

async function readEntry(
  zip: ZipFile,
  entry: Entry,
  name: string,
  limits: ArchiveLimits,
): Promise<SourceItem> {
  const unsafe = unsafePathReason(name);
  if (unsafe) return skipped(name, 'unsafe-path', unsafe);
  const fileType = (entry.externalFileAttributes >>> 16) & S_IFMT;
  if (fileType === S_IFLNK) return skipped(name, 'link', 'symbolic link');
  if (fileType !== 0 && fileType !== S_IFREG && fileType !== S_IFDIR) {
    return skipped(name, 'link', `special file (mode 0o${fileType.toString(8)})`);
  }
  if (entry.isEncrypted()) return skipped(name, 'encrypted', 'encrypted entry');
  if (looksLikeArchiveName(name)) return skipped(name, 'nested-archive', 'archive inside the archive');
  if (entry.uncompressedSize > limits.maxFileBytes) {
    return skipped(
      name,
      'too-large',
      `${formatBytes(entry.uncompressedSize)} > ${formatBytes(limits.maxFileBytes)}`,
    );
  }
  const ratio = entry.uncompressedSize / Math.max(1, entry.compressedSize);
  if (entry.uncompressedSize >= RATIO_CHECK_MIN_BYTES && ratio > limits.maxCompressionRatio) {
    return skipped(
      name,
      'suspicious-compression',
      `compresses ${Math.round(ratio)}:1, more than the ${limits.maxCompressionRatio}:1 limit`,
    );
  }
  if (!entry.canDecodeFileData()) {
    return skipped(name, 'unreadable', `unsupported compression method ${entry.compressionMethod}`);
  }
  try {
    const data = await readBounded(await zip.openReadStreamPromise(entry), limits.maxFileBytes);
    if (!data) return skipped(name, 'too-large', `more than ${formatBytes(limits.maxFileBytes)}`);
    return { kind: 'file', name, data };
  } catch (err) {
    // yauzl checks the inflated length against the header: a lying header lands here.
    return skipped(name, 'unreadable', `damaged entry: ${errorText(err)}`);
  }
}
