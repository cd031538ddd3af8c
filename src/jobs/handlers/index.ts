// The handlers every production worker loads. Worker processes load this module by default; more
// modules can be added with `facestyle worker --handlers <module>` or FACESTYLE_WORKER_HANDLERS.
// Model code is imported here, in the worker process only: the bot never loads TensorFlow.js.

import { photoRetentionMs, sweepPhotos } from '../../store/toonify-photos.ts';
import type { JobKinds } from '../kinds.ts';
import { blendHandler } from './blend.ts';
import { datasetHandler } from './dataset.ts';
import { finetuneHandler } from './finetune.ts';
import { generateHandler } from './generate.ts';
import { WorkerModels } from './models.ts';
import { noopHandler } from './noop.ts';
import type { HandlerRegistry, WorkerEnvironment } from './registry.ts';
import { toonifyHandler } from './toonify.ts';

/** Kept photos expire even when no toonify job comes along to sweep them. */
const PHOTO_SWEEP_MS = 15 * 60_000;

export function register(registry: HandlerRegistry<JobKinds>, env: WorkerEnvironment): void {
  const models = new WorkerModels(env.dataDir);
  registry.register('noop', noopHandler);
  registry.registerBatch('generate', generateHandler(models), { maxBatch: 8 });
  registry.register('blend', blendHandler(models));
  registry.register('finetune', finetuneHandler(models));
  registry.register('dataset', datasetHandler);
  const photos = { dataDir: env.dataDir, retentionMs: photoRetentionMs() };
  registry.register('toonify', toonifyHandler(models, photos));
  setInterval(() => {
    sweepPhotos(photos).catch((err) =>
      env.log.error('could not sweep toonify photos', { error: (err as Error).message }),
    );
  }, PHOTO_SWEEP_MS).unref();
  registry.onOutOfMemory(() => void models.clear());
}
