// The few lines a person reads after a build (CLI output, the bot's /finetune confirmation).

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

export function summarizeDataset(report: DatasetReport): string {
  const skipped = (Object.keys(LABELS) as EntryStatus[])
    .filter((status) => status !== 'kept' && report.counts[status] > 0)
    .map((status) => `${LABELS[status]}: ${report.counts[status]}`);
  return [
    `${report.kept} image${report.kept === 1 ? '' : 's'} at ${report.resolution}x${report.resolution} (${report.align} alignment) from ${report.sources} file${report.sources === 1 ? '' : 's'}${report.reused ? ', reused from an earlier build' : ` in ${report.seconds.toFixed(1)} s`}`,
    skipped.length ? `not used: ${skipped.join(', ')}` : 'every file was used',
    report.published === false ? 'nothing was written' : `dataset: ${report.outDir}`,
  ].join('\n');
}
