// dataset: builds the dataset folder of a /finetune upload in the worker, where face detection
// (TensorFlow.js in its own thread) belongs; the bot only waits for the result. The archive is the
// bot's download: deleted here once read, whatever the outcome.
import { rm } from 'node:fs/promises';
import { UserError } from '../../errors.ts';
import type { JobKinds } from '../kinds.ts';
import type { JobHandler } from './registry.ts';

export const datasetHandler: JobHandler<JobKinds, 'dataset'> = async (payload, ctx) => {
  const { buildDataset, DatasetError, summarizeNotUsed } = await import('../../datasets/index.ts');
  try {
    const report = await buildDataset({
      input: payload.archivePath,
      outDir: payload.outDir,
      resolution: payload.resolution,
      align: payload.align,
      minImages: payload.minImages,
      onProgress: (p) =>
        ctx.progress({
          fraction: p.total ? p.done / p.total : 0,
          stage: `${p.done}${p.total ? `/${p.total}` : ''} images read, ${p.kept} kept`,
        }),
    });
    return {
      datasetDir: report.outDir,
      images: report.kept,
      skipped: report.sources - report.kept,
      keptBy: report.keptBy ?? { faces: report.kept, center: 0 },
      notUsed: summarizeNotUsed(report),
      ...(report.contactSheet ? { contactSheet: report.contactSheet } : {}),
    };
  } catch (err) {
    // Members read this message: the refusal without the hint that names server folders.
    if (err instanceof DatasetError) throw new UserError(err.message);
    throw err;
  } finally {
    await rm(payload.archivePath, { force: true });
  }
};
