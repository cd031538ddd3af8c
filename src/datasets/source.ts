// The common shape of an input (zip, tar, folder): a stream of entries, each either its bytes
// (bounded by the limits) or the reason it was not read.

import { DatasetError } from './errors.ts';
import { type ArchiveLimits, formatBytes } from './limits.ts';
import type { SkipStatus } from './types.ts';

export type SourceItem =
  | { kind: 'file'; name: string; data: Buffer }
  | { kind: 'skipped'; name: string; status: SkipStatus; reason: string };

export interface InputSource {
  format: 'zip' | 'tar' | 'tar.gz' | 'folder';
  /** Entries that will be yielded, when known before reading (zip, folder). */
  total: number | null;
  /** Yields one entry at a time; the next is not read until the consumer asks for it. */
  items(): AsyncGenerator<SourceItem>;
}

export const skipped = (name: string, status: SkipStatus, reason: string): SourceItem => ({
  kind: 'skipped',
  name,
  status,
  reason,
});

/** Counts entries and uncompressed bytes against the limits; throws once either is exceeded. */
export class ReadBudget {
  entries = 0;
  bytes = 0;
  constructor(private readonly limits: ArchiveLimits) {}

  countEntries(count = 1): void {
    this.entries += count;
    if (this.entries > this.limits.maxEntries) {
      throw new DatasetError(
        `the input has more than ${this.limits.maxEntries} entries`,
        'split it into smaller archives, or raise the maxEntries limit',
      );
    }
  }

  countBytes(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes > this.limits.maxTotalBytes) {
      throw new DatasetError(
        `the input expands to more than ${formatBytes(this.limits.maxTotalBytes)}`,
        'upload fewer or smaller images, or raise the maxTotalBytes limit',
      );
    }
  }
}

/**
 * Reads a stream to its end into one buffer, or stops (destroying the stream) and returns null
 * as soon as it passes maxBytes: whatever its header claimed, an entry cannot make us buffer more.
 */
export async function readBounded(
  stream: AsyncIterable<unknown> & { destroy(): void },
  maxBytes: number,
): Promise<Buffer | null> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const item of stream) {
    const chunk = item as Uint8Array;
    length += chunk.length;
    if (length > maxBytes) {
      stream.destroy();
      return null;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
