// finetune: transfer learning from a base model on a dataset folder, snapshots every N epochs
// with preview grids. The run folder holds the snapshots, so a fine-tune whose worker died resumes
// from its newest snapshot when the job is retried. Each snapshot is scored against the training
// images (KID, bounded cost) and the progress picture shows the preview beside the loss and score
// curves; the result names the best-scored epoch.
import { basename, join } from 'node:path';
import { UserError } from '../../errors.ts';
import { disposeCheckpoint, loadCheckpoint } from '../../model/checkpoint/io.ts';
import { TrainingSet } from '../../model/train/data.ts';
import type { CurvePoint } from '../../model/train/loss-curve.ts';
import { listSnapshots, previewPath } from '../../model/train/snapshot.ts';
import { finetune } from '../../model/train/trainer.ts';
import { bestScored, formatScore, readSnapshotScores } from '../../pipelines/score/best.ts';
import { writeProgressImage } from '../../pipelines/score/progress-image.ts';
import { TrainingSetScorer } from '../../pipelines/score/training.ts';
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
      const runName = basename(payload.runDir);
      let lastPreview: string | undefined;
      let progressImage: string | undefined;
      // The curves: losses of this session, scores of every snapshot (a resumed run's earlier ones
      // are read back from their files).
      const losses: CurvePoint[] = [];
      const earlier = await readSnapshotScores(await listSnapshots(payload.runDir));
      const scores: CurvePoint[] = earlier.flatMap((s) =>
        s.score ? [{ kimg: s.epoch, values: { [s.score.metric]: s.score.kid } }] : [],
      );
      let metric = earlier.find((s) => s.score)?.score?.metric;
      let lastScore = '';
      let drawing: Promise<void> = Promise.resolve();
      const scorer = new TrainingSetScorer(data, { samples: payload.scoreSamples });
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
        scoreSnapshot: async (G, secondsPerEpoch) => (await scorer.score(G, secondsPerEpoch)).score,
        onProgress: (e) => {
          losses.push({ kimg: e.kimg, values: { G: e.losses.G, D: e.losses.D } });
          if (e.score) {
            metric = e.score.metric;
            scores.push({ kimg: e.epoch, values: { [metric]: e.score.kid } });
            lastScore = ` · ${formatScore(e.score)}`;
          }
          if (e.snapshot) {
            const preview = previewPath(payload.runDir, e.epoch);
            lastPreview = preview;
            const picture = join(payload.runDir, `progress-epoch${String(e.epoch).padStart(5, '0')}.png`);
            const input = {
              title: runName,
              previewPath: preview,
              losses: [...losses],
              lossSeries: ['G', 'D'],
            };
            drawing = drawing
              .then(() => writeProgressImage(picture, { ...input, scores: [...scores], metric }))
              .then((written) => {
                progressImage = written;
                lastPreview = written;
              })
              .catch(() => undefined); // the plain preview stays shown
          }
          const lossText = Object.entries(e.losses)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(', ');
          ctx.progress({
            fraction: Math.min(1, e.epochFraction / e.epochs),
            stage: `epoch ${e.epoch}/${e.epochs} · ${e.kimg.toFixed(1)} kimg · ${lossText} · p ${e.augmentP.toFixed(2)}${lastScore}`,
            previewPath: lastPreview,
            etaSeconds: e.etaSeconds,
          });
        },
      });
      await drawing;
      ctx.signal.throwIfAborted();
      const snapshots = await readSnapshotScores(result.snapshots);
      const best = bestScored(snapshots);
      return {
        snapshots: snapshots.map((s) => ({
          epoch: s.epoch,
          checkpointPath: s.path,
          previewPath: previewPath(payload.runDir, s.epoch),
          ...(s.score ? { score: { metric: s.score.metric, kid: s.score.kid, kidStd: s.score.kidStd } } : {}),
        })),
        ...(best ? { bestEpoch: best.epoch } : {}),
        ...(progressImage ? { progressImagePath: progressImage } : {}),
      };
    } finally {
      disposeCheckpoint(ckpt);
    }
  };
}
