// Bounds on what an uploaded archive may make the process read, inflate and decode. Together they
// bound memory: one entry is held at a time (at most maxFileBytes), and one decoded image (at most
// 3 * maxPixels bytes of RGB).

import { DatasetError } from './errors.ts';
import type { ArchiveLimits } from './types.ts';

// Declared with the other dataset types (types.ts); re-exported for the readers that take limits.
export type { ArchiveLimits };

export const DEFAULT_LIMITS: Readonly<ArchiveLimits> = {
  maxEntries: 5000,
  maxTotalBytes: 2 * 2 ** 30,
  maxFileBytes: 50 * 2 ** 20,
  maxCompressionRatio: 100,
  maxPixels: 50_000_000,
};

/**
 * Below this many uncompressed bytes the ratio is not checked: a small file of flat colour can
 * legitimately deflate 1000:1, and cannot hurt.
 */
export const RATIO_CHECK_MIN_BYTES = 1 * 2 ** 20;

export function resolveLimits(overrides: Partial<ArchiveLimits> = {}): ArchiveLimits {
  const limits = { ...DEFAULT_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new DatasetError(`limit ${name} must be a positive number, got ${value}`);
    }
  }
  return limits;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} B`;
}
