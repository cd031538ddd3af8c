// Dataset intake for /finetune: an uploaded archive becomes an aligned, deduplicated dataset folder
// through src/datasets. Face detection runs in a worker thread of the bot's process, on a
// TensorFlow.js engine of its own (src/datasets/face-detector.ts), so the bot's event loop keeps
// answering interactions while an archive is ingested; decoding and alignment (sharp) run on
// libuv's threads. src/datasets is imported only when an admin starts a fine-tune, never at bot
// start, and the detection thread starts with the first photo.
import { join } from 'node:path';
import type { DatasetIntake, ImportedDataset } from './services.ts';

/** Too few faces make a fine-tune that only memorises them. */
export const MIN_DATASET_IMAGES = 50;

export class ArchiveDatasetIntake implements DatasetIntake {
  constructor(
    private readonly datasetsDir: string,
    /** FACESTYLE_MIN_DATASET_IMAGES: fewer usable faces refuse the fine-tune. */
    private readonly minImages = MIN_DATASET_IMAGES,
  ) {}

  async importArchive(
    archivePath: string,
    options: { name: string; resolution: number; onProgress?: (fraction: number, stage: string) => void },
  ): Promise<ImportedDataset> {
    const { buildDataset } = await import('../datasets/index.ts');
    const report = await buildDataset({
      input: archivePath,
      outDir: join(this.datasetsDir, options.name),
      resolution: options.resolution,
      align: 'faces',
      minImages: this.minImages,
      onProgress: (p) =>
        options.onProgress?.(p.total ? p.done / p.total : 0, `${p.done} images read, ${p.kept} faces kept`),
    });
    return {
      datasetDir: report.outDir,
      images: report.kept,
      skipped: report.sources - report.kept,
      ...(report.contactSheet ? { contactSheet: report.contactSheet } : {}),
    };
  }
}
