// Dataset intake for /finetune: the uploaded archive becomes a `dataset` job on the long lane, and
// a worker builds the aligned, deduplicated folder (src/jobs/handlers/dataset.ts). Face detection is
// TensorFlow.js, which never runs in the bot process (test/bot/imports.test.ts keeps it so); the bot
// waits for the job's end and forwards its progress.
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import type { DatasetPayload } from '../jobs/kinds.ts';
import { isTerminal, type JobEvent, type JobInfo } from '../jobs/types.ts';
import type { BotJobs, DatasetIntake, ImportedDataset, ImportOptions } from './services.ts';

/** Too few faces make a fine-tune that only memorises them. */
export const MIN_DATASET_IMAGES = 50;

/** What to try when a build kept too few images, by how it was aligned. */
function refusalHint(align: DatasetPayload['align']): string {
  return align === 'faces'
    ? 'add more images; for drawn or anime faces, which the face detector misses, use align:auto or align:center'
    : 'add more images: a few hundred faces make a good style';
}

export class QueuedDatasetIntake implements DatasetIntake {
  constructor(
    private readonly jobs: BotJobs,
    private readonly datasetsDir: string,
    /** FACESTYLE_MIN_DATASET_IMAGES: fewer usable faces refuse the fine-tune. */
    private readonly minImages = MIN_DATASET_IMAGES,
  ) {}

  async importArchive(archivePath: string, options: ImportOptions): Promise<ImportedDataset> {
    const align = options.align ?? 'auto';
    // Listening before submitting: a quick job may end before submit() resolves.
    const seen: JobEvent[] = [];
    let settle: ((job: JobInfo) => void) | undefined;
    let jobId: string | undefined;
    const onEvent = (event: JobEvent) => {
      if (!jobId) {
        seen.push(event);
        return;
      }
      if (event.job.id !== jobId || !settle) return;
      if (event.type === 'progress' && event.job.progress)
        options.onProgress?.(event.job.progress.fraction, event.job.progress.stage);
      if (isTerminal(event.job.status)) settle(event.job);
    };
    const unsubscribe = this.jobs.subscribe(onEvent);
    let job: JobInfo;
    try {
      const submitted = await this.jobs.submit({
        kind: 'dataset',
        payload: {
          archivePath,
          outDir: join(this.datasetsDir, options.name),
          resolution: options.resolution,
          align,
          minImages: this.minImages,
        },
        actor: { userId: options.ownerId, isAdmin: true },
        meta: { ...options.meta, modelName: options.name },
      });
      job = await new Promise<JobInfo>((resolve) => {
        settle = resolve;
        jobId = submitted.id;
        for (const event of seen.splice(0)) onEvent(event);
        void this.jobs.get(submitted.id).then((latest) => {
          if (latest && isTerminal(latest.status)) resolve(latest);
        });
      });
    } finally {
      unsubscribe();
    }
    if (job.status === 'cancelled') throw new UserError('the dataset was cancelled before it was ready');
    if (job.status !== 'completed' || job.kind !== 'dataset' || !job.result) {
      const reason = job.failure?.code === 'invalid' ? job.failure.message : undefined;
      if (reason) throw new UserError(reason, refusalHint(align));
      throw new Error(`dataset job ${job.id} ${job.status}: ${job.failure?.message ?? 'no reason'}`);
    }
    return { ...job.result, align };
  }
}
