// .tar and .tar.gz input through tar-stream. A tar has no index, so limits are enforced while
// streaming: every inflated byte is counted (skipped entries too, since they must be read past),
// and the gzip stream as a whole must stay under the compression-ratio limit.

import { createReadStream } from 'node:fs';
import { type Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { isSystemMetadata, unsafePathReason } from './entry-path.ts';
import { DatasetError } from './errors.ts';
import { type ArchiveLimits, formatBytes, RATIO_CHECK_MIN_BYTES } from './limits.ts';
import { looksLikeArchiveName } from './sniff.ts';
import { errorText, type InputSource, ReadBudget, readBounded, type SourceItem, skipped } from './source.ts';

class ByteCounter extends Transform {
  bytes = 0;
  constructor(private readonly onChunk: (chunkBytes: number, total: number) => void = () => {}) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    try {
      this.onChunk(chunk.length, this.bytes);
      callback(null, chunk);
    } catch (err) {
      callback(err as Error);
    }
  }
}

export function openTar(path: string, gzipped: boolean, limits: ArchiveLimits): InputSource {
  return { format: gzipped ? 'tar.gz' : 'tar', total: null, items: () => readTar(path, gzipped, limits) };
}

async function* readTar(path: string, gzipped: boolean, limits: ArchiveLimits): AsyncGenerator<SourceItem> {
  const budget = new ReadBudget(limits);
  const file = createReadStream(path);
  const compressed = new ByteCounter();
  const inflated = new ByteCounter((chunkBytes, total) => {
    budget.countBytes(chunkBytes);
    const ratio = total / Math.max(1, compressed.bytes);
    if (gzipped && total >= RATIO_CHECK_MIN_BYTES && ratio > limits.maxCompressionRatio) {
      throw new DatasetError(
        `the archive inflates more than ${limits.maxCompressionRatio}:1 (a zip bomb?)`,
        'upload the images themselves: photos barely compress',
      );
    }
  });
  const extract = tar.extract();
  const stages: Readable[] = gzipped ? [file, compressed, createGunzip(), inflated] : [file, inflated];
  for (const [i, stage] of stages.entries()) {
    // Any stage's failure (limit, bad gzip, unreadable file) ends the whole read with that error.
    stage.on('error', (err: Error) => extract.destroy(err));
    stage.pipe((stages[i + 1] ?? extract) as unknown as Writable);
  }

  try {
    for await (const entry of extract) {
      budget.countEntries();
      const { header } = entry;
      const name = header.name;
      const verdict = judgeHeader(name, header.type, header.size, limits);
      if (verdict === 'ignore' || verdict) {
        // Skipped entries still have to be read past; their bytes count against the total.
        entry.resume();
        if (verdict !== 'ignore') yield verdict;
        continue;
      }
      const data = await readBounded(entry, limits.maxFileBytes);
      yield data
        ? { kind: 'file', name, data }
        : skipped(name, 'too-large', `more than ${formatBytes(limits.maxFileBytes)}`);
    }
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw new DatasetError(`damaged ${gzipped ? 'tar.gz' : 'tar'} file: ${errorText(err)}`);
  } finally {
    for (const stage of stages) stage.destroy();
  }
}

function judgeHeader(
  name: string,
  type: string | null,
  size: number,
  limits: ArchiveLimits,
): SourceItem | 'ignore' | null {
  if (type === 'directory' || isSystemMetadata(name)) return 'ignore';
  const unsafe = unsafePathReason(name);
  if (unsafe) return skipped(name, 'unsafe-path', unsafe);
  if (type === 'symlink') return skipped(name, 'link', 'symbolic link');
  if (type === 'link') return skipped(name, 'link', 'hard link');
  if (type !== 'file' && type !== 'contiguous-file') return skipped(name, 'link', `special file (${type})`);
  if (looksLikeArchiveName(name)) return skipped(name, 'nested-archive', 'archive inside the archive');
  if (size > limits.maxFileBytes) {
    return skipped(name, 'too-large', `${formatBytes(size)} > ${formatBytes(limits.maxFileBytes)}`);
  }
  return null;
}
