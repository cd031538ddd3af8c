// The few lines a person reads after a build (CLI output, the bot's /finetune confirmation).

import { plural } from '../text.ts';
import type { DatasetReport, EntryStatus } from './types.ts';

const LABELS: Record<EntryStatus, string> = {
  kept: 'kept',
  'no-face': 'no face found',
  'several-faces': 'several faces',
  'too-small': 'too small',
  duplicate: 'duplicates',
  unreadable: 'unreadable',
  'not-an-image': 'not images',
  'too-large': 'too large',
  'unsafe-path': 'unsafe paths',
  link: 'links / special files',
  'nested-archive': 'nested archives',
  encrypted: 'encrypted',
  'suspicious-compression': 'suspicious compression',
};

/** "auto alignment: 40 on a detected face, 20 centre-cropped", or "faces alignment". */
export function describeAlignment(report: Pick<DatasetReport, 'align' | 'keptBy'>): string {
  if (report.align !== 'auto' || !report.keptBy) return `${report.align} alignment`;
  return `auto alignment: ${report.keptBy.faces} on a detected face, ${report.keptBy.center} centre-cropped`;
}

/** "no face found: 2, duplicates: 1", or "" when every file was used. */
export function summarizeNotUsed(report: Pick<DatasetReport, 'counts'>): string {
  return (Object.keys(LABELS) as EntryStatus[])
    .filter((status) => status !== 'kept' && report.counts[status] > 0)
    .map((status) => `${LABELS[status]}: ${report.counts[status]}`)
    .join(', ');
}

export function summarizeDataset(report: DatasetReport): string {
  const skipped = summarizeNotUsed(report);
  return [
    `${plural(report.kept, 'image')} at ${report.resolution}x${report.resolution} (${describeAlignment(report)}) from ${plural(report.sources, 'file')}${report.reused ? ', reused from an earlier build' : ` in ${report.seconds.toFixed(1)} s`}`,
    skipped ? `not used: ${skipped}` : 'every file was used',
    report.published === false ? 'nothing was written' : `dataset: ${report.outDir}`,
  ].join('\n');
}
