// Dataset intake for /finetune: an uploaded archive becomes an aligned, deduplicated dataset folder
// through src/datasets. Face detection runs TensorFlow.js, so src/datasets is imported only when an
// admin starts a fine-tune, never at bot start; a job kind run by the worker would keep it out of
// the bot's process entirely.
import { join } from 'node:path';
import type { DatasetIntake, ImportedDataset } from './services.ts';

/** Too few faces make a fine-tune that only memorises them. */
export const MIN_DATASET_IMAGES = 50;

export class ArchiveDatasetIntake implements DatasetIntake {
  constructor(private readonly datasetsDir: string) {}

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
      minImages: MIN_DATASET_IMAGES,
      onProgress: (p) =>
        options.onProgress?.(p.total ? p.done / p.total : 0, `${p.done} images read, ${p.kept} faces kept`),
    });
    return { datasetDir: report.outDir, images: report.kept, skipped: report.sources - report.kept };
  }
}
