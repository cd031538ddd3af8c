// Dataset ingest for fine-tuning: archive or folder in, aligned and deduplicated faces out.
export { buildDataset, CONTACT_SHEET_FILE, IMAGES_DIR, MANIFEST_FILE, STATS_FILE } from './build.ts';
export { DatasetError } from './errors.ts';
export { type ArchiveLimits, DEFAULT_LIMITS } from './limits.ts';
export { describeAlignment, summarizeDataset, summarizeNotUsed } from './summary.ts';
export type {
  AlignMode,
  BuildDatasetOptions,
  DatasetProgress,
  DatasetReport,
  DatasetStats,
  EntryStatus,
  ManifestEntry,
  MultipleFacesPolicy,
  Transform,
} from './types.ts';
export { ALIGN_MODES, ENTRY_STATUSES } from './types.ts';
