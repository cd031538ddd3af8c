// finetune: transfer learning from a base model on a dataset folder, snapshots every N epochs
// with preview grids. The run folder holds the snapshots, so a fine-tune whose worker died resumes
// from its newest snapshot when the job is retried.
import { basename } from 'node:path';
import { UserError } from '../../errors.ts';
import { disposeCheckpoint, loadCheckpoint } from '../../model/checkpoint/io.ts';
import { TrainingSet } from '../../model/train/data.ts';
import { previewPath } from '../../model/train/snapshot.ts';
import { finetune } from '../../model/train/trainer.ts';
import type { JobKinds } from '../kinds.ts';
import type { WorkerModels } from './models.ts';
import type { JobHandler } from './registry.ts';

export function finetuneHandler(models: WorkerModels): JobHandler<JobKinds, 'finetune'> {
  return async (payload, ctx) => {
    await models.ensureBackend();
    const entry = await models.registry.resolve(payload.base);
    const ckpt = await loadCheckpoint(entry.path);
    try {
      if (!ckpt.G || !ckpt.D || !ckpt.config.D) {
        throw new UserError(
          `the model "${entry.name}" has no discriminator, so it cannot be fine-tuned`,
          'fine-tune from a full training checkpoint (G, D and G_ema), e.g. an imported network snapshot',
        );
      }
      const data = await TrainingSet.fromFolder(payload.datasetDir, ckpt.config.G.resolution);
      let lastPreview: string | undefined;
      const result = await finetune({
        outDir: payload.runDir,
        name: basename(payload.runDir),
        config: ckpt.config,
        networks: { G: ckpt.G, D: ckpt.D, G_ema: ckpt.G_ema },
        parent: entry.name,
        data,
        epochs: payload.epochs,
        snapshotEvery: payload.snapshotEvery,
        hyper: {
          ...(payload.batchSize ? { batchSize: payload.batchSize } : {}),
          ...(payload.learningRate ? { glr: payload.learningRate, dlr: payload.learningRate } : {}),
        },
        signal: ctx.signal,
        onProgress: (e) => {
          if (e.snapshot) lastPreview = previewPath(payload.runDir, e.epoch);
          const losses = Object.entries(e.losses)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(', ');
          ctx.progress({
            fraction: Math.min(1, e.epochFraction / e.epochs),
            stage: `epoch ${e.epoch}/${e.epochs} · ${e.kimg.toFixed(1)} kimg · ${losses} · p ${e.augmentP.toFixed(2)}`,
            previewPath: lastPreview,
            etaSeconds: e.etaSeconds,
          });
        },
      });
      ctx.signal.throwIfAborted();
      return {
        snapshots: result.snapshots.map((s) => ({
          epoch: s.epoch,
          checkpointPath: s.path,
          previewPath: previewPath(payload.runDir, s.epoch),
        })),
      };
    } finally {
      disposeCheckpoint(ckpt);
    }
  };
}
