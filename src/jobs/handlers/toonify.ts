// toonify: a member's photo in a community style. The model names are resolved here, through the
// worker's registry; src/pipelines/toonify.ts aligns the face, projects it into the base model and
// renders it with the blend. The photo is released (deleted, or kept for the configured hours) when
// the job ends, whether it succeeded, failed or was cancelled.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../errors.ts';
import { readCheckpointInfo } from '../../model/checkpoint/io.ts';
import type { ModelEntry } from '../../pipelines/registry.ts';
import { type StyleSwap, type ToonifyProgress, toonify } from '../../pipelines/toonify.ts';
import { type PhotoPolicy, releasePhoto, sweepPhotos } from '../../store/toonify-photos.ts';
import { type JobKinds, TOONIFY_DEFAULT_STEPS, type ToonifyPayload } from '../kinds.ts';
import type { WorkerModels } from './models.ts';
import type { HandlerContext, JobHandler } from './registry.ts';

/** About ten previews a job: enough to watch the face appear, few enough to cost nothing. */
function previewEvery(steps: number): number {
  return Math.max(5, Math.round(steps / 10));
}

async function tryResolve(models: WorkerModels, nameOrPath: string): Promise<ModelEntry | undefined> {
  try {
    return await models.registry.resolve(nameOrPath);
  } catch (err) {
    if (err instanceof UserError) return undefined;
    throw err;
  }
}

/**
 * The model `source` was made from: a fine-tune records its parent's name, a saved blend the names
 * and the paths (from the machine that made it, so the file name is tried too) of what it mixed.
 */
async function baseOf(models: WorkerModels, source: ModelEntry): Promise<ModelEntry> {
  const { meta } = await readCheckpointInfo(source.path);
  const extraBase = typeof meta.extra?.base === 'string' ? meta.extra.base : undefined;
  const firstParent = meta.parents?.[0];
  const candidates = [
    meta.parent,
    extraBase,
    firstParent,
    firstParent
      ?.split(/[\\/]/)
      .at(-1)
      ?.replace(/\.safetensors$/, ''),
  ];
  for (const candidate of candidates) {
    const entry = candidate ? await tryResolve(models, candidate) : undefined;
    if (entry) return entry;
  }
  throw new UserError(
    `the model "${source.name}" does not say which model it was made from, or that model is not installed`,
    'name the base model as well',
  );
}

async function resolveModels(
  models: WorkerModels,
  payload: ToonifyPayload,
): Promise<{ base: ModelEntry; blend: string | StyleSwap; label: string }> {
  if (payload.blend) {
    const blend = await models.registry.resolve(payload.blend);
    const base = payload.base ? await models.registry.resolve(payload.base) : await baseOf(models, blend);
    return { base, blend: blend.path, label: blend.name };
  }
  const style = await models.registry.resolve(payload.style ?? '');
  const base = payload.base ? await models.registry.resolve(payload.base) : await baseOf(models, style);
  if (payload.layer! > base.resolution)
    throw new UserError(
      `layer ${payload.layer}px is above the model's resolution (${base.resolution}px)`,
      'pick a lower layer',
    );
  return {
    base,
    blend: { style: style.path, layer: payload.layer!, width: payload.width, direction: payload.direction },
    label: `${style.name} at ${payload.layer}px`,
  };
}

/** The alignment's advice names the CLI flags; jobs come from Discord or `facestyle jobs`. */
function forJobs(err: unknown): unknown {
  if (err instanceof UserError && err.hint?.includes('--face')) {
    return new UserError(
      err.message,
      err.hint.replace('with --face largest or --face N, N', 'with the face option: a number'),
    );
  }
  return err;
}

function stageText(progress: ToonifyProgress, label: string): string {
  switch (progress.stage) {
    case 'aligning':
      return 'finding and aligning the face';
    case 'loading':
      return `loading ${label}`;
    case 'projecting': {
      const p = progress.projection;
      // No loss value: members cannot read it (operators have it in the log).
      return p ? `fitting the face: step ${p.step}/${p.steps}` : 'fitting the face';
    }
    case 'rendering':
      return `rendering it with ${label}`;
  }
}

async function run(
  models: WorkerModels,
  payload: ToonifyPayload,
  ctx: HandlerContext,
): Promise<JobKinds['toonify']['result']> {
  const backend = await models.ensureBackend();
  ctx.progress({ fraction: 0, stage: 'finding the models' });
  const { base, blend, label } = await resolveModels(models, payload);
  ctx.signal.throwIfAborted();
  const steps = payload.steps ?? TOONIFY_DEFAULT_STEPS;
  let lastPreview: string | undefined;
  let projectionStartedAt: number | undefined;
  try {
    const result = await toonify({
      photoPath: payload.photoPath,
      baseCheckpoint: base.path,
      blend,
      outDir: ctx.artifactsDir,
      // Group photos are normal: the largest face unless the member chose one (they are told how many).
      face: payload.face ?? 'largest',
      steps,
      learningRate: payload.learningRate,
      pixelWeight: payload.pixelWeight,
      perceptualWeight: payload.perceptualWeight,
      previewEvery: previewEvery(steps),
      // In the job's folder, so that the status message can show it; deleted when toonify ends.
      previewPath: join(ctx.artifactsDir, 'preview.png'),
      backend: backend.name,
      signal: ctx.signal,
      onProgress: async (progress) => {
        // On wasm/cpu a projection step resolves through microtasks only: without a turn of the
        // event loop no progress would reach the bot, and a cancel would wait for the next preview.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (progress.previewPath) lastPreview = progress.previewPath;
        let etaSeconds: number | undefined;
        const p = progress.projection;
        if (p) {
          projectionStartedAt ??= Date.now();
          const perStep = (Date.now() - projectionStartedAt) / 1000 / Math.max(1, p.step - 1);
          if (p.step > 1) etaSeconds = perStep * (p.steps - p.step);
        }
        ctx.progress({
          fraction: progress.fraction,
          stage: stageText(progress, label),
          // Kept between previews: a progress update without one would take it off the message.
          previewPath: lastPreview,
          etaSeconds,
        });
      },
    });
    // The bare aligned crop is a copy of the photo; the grid the member asked for shows it anyway.
    await rm(result.originalPath, { force: true });
    ctx.log.info('toonify done', {
      job: ctx.jobId,
      psnr: Number(result.metrics.psnr.toFixed(2)),
      stepsPerSecond: Number(result.metrics.stepsPerSecond.toFixed(2)),
      backend: result.metrics.backend,
    });
    return {
      gridPath: result.gridPath,
      reconstructionPath: result.reconstructionPath,
      stylisedPath: result.stylisedPath,
      face: { index: result.face.index, count: result.face.count },
      psnr: result.metrics.psnr,
      steps: result.metrics.steps,
      projectionSeconds: result.metrics.projectionSeconds,
      backend: result.metrics.backend,
    };
  } catch (err) {
    throw forJobs(err);
  }
}

export function toonifyHandler(models: WorkerModels, photos: PhotoPolicy): JobHandler<JobKinds, 'toonify'> {
  return async (payload, ctx) => {
    try {
      return await run(models, payload, ctx);
    } finally {
      try {
        const released = await releasePhoto(payload.photoPath, photos);
        ctx.log.debug('toonify photo released', { job: ctx.jobId, released });
        await sweepPhotos(photos);
      } catch (err) {
        // The job's outcome stands; the operator must hear of a photo that could not be deleted.
        ctx.log.error('could not release a toonify photo', {
          job: ctx.jobId,
          path: payload.photoPath,
          error: (err as Error).message,
        });
      }
    }
  };
}
