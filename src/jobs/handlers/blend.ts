// blend: base | style | blend for some seeds (and the snapshot x layer matrix on request), plus
// the blended generator saved as a checkpoint of its own so it can be generated from and shared.
import { join } from 'node:path';
import { encodeUnderLimit, hstack, renderGrid, writeImage } from '../../images/index.ts';
import { generatorParams, saveCheckpoint } from '../../model/checkpoint/io.ts';
import { blendCheckpoints } from '../../pipelines/blend.ts';
import { blendComparison, blendMatrix } from '../../pipelines/showcase.ts';
import type { JobKinds } from '../kinds.ts';
import type { LoadedGenerator, WorkerModels } from './models.ts';
import type { JobHandler } from './registry.ts';

const MATRIX_MAX_SNAPSHOTS = 6;

function source(m: LoadedGenerator) {
  return {
    path: m.checkpoint.path,
    config: m.checkpoint.config,
    meta: m.checkpoint.meta,
    params: generatorParams(m.checkpoint),
  };
}

export function blendHandler(workerModels: WorkerModels): JobHandler<JobKinds, 'blend'> {
  return (payload, ctx) =>
    workerModels.withScope(async (models) => {
      const direction = payload.direction ?? 'texture';
      ctx.progress({ fraction: 0.05, stage: 'loading models' });
      const base = await models.generator(payload.base);
      const style = await models.generator(payload.style);
      const cfg = base.checkpoint.config.G;
      ctx.signal.throwIfAborted();

      ctx.progress({ fraction: 0.2, stage: 'rendering base | style | blend' });
      const comparison = await blendComparison(
        cfg,
        generatorParams(base.checkpoint),
        generatorParams(style.checkpoint),
        payload.layer,
        {
          seeds: payload.seeds,
          ...(payload.variation ? { variation: payload.variation } : {}),
          psi: payload.psi,
          direction,
          width: payload.width || undefined,
          renderer: models.renderer(),
        },
      );
      const styleLabel =
        style.checkpoint.meta.epoch !== undefined
          ? `${style.checkpoint.meta.name} e${style.checkpoint.meta.epoch}`
          : style.checkpoint.meta.name;
      const grid = await renderGrid({
        ...comparison,
        tileSize: Math.max(128, cfg.resolution),
        title: `${base.checkpoint.meta.name} × ${styleLabel} · swap ≥${payload.layer} (${direction})`,
      });
      const gridPath = await writeImage(join(ctx.artifactsDir, 'blend.png'), await encodeUnderLimit(grid));
      ctx.signal.throwIfAborted();

      ctx.progress({ fraction: 0.6, stage: 'saving the blended model' });
      const { checkpoint, owned } = blendCheckpoints(source(base), source(style), {
        layer: payload.layer,
        width: payload.width || undefined,
        direction,
      });
      const checkpointPath = join(ctx.artifactsDir, 'blend.safetensors');
      try {
        await saveCheckpoint(checkpointPath, checkpoint, { dtype: 'F16' });
      } finally {
        for (const t of owned) t.dispose();
      }

      let matrixPath: string | undefined;
      if (payload.matrix) {
        ctx.progress({ fraction: 0.7, stage: 'rendering the blend matrix' });
        const all = await workerModels.registry.snapshots(style.checkpoint.meta.name);
        // Evenly spaced snapshots, always including the one asked for.
        const step = Math.max(1, Math.ceil(all.length / MATRIX_MAX_SNAPSHOTS));
        const chosen = all.filter((_, i) => i % step === 0 || all[i].path === style.checkpoint.path);
        const snapshots = [];
        for (const entry of chosen.length
          ? chosen
          : [{ path: style.checkpoint.path, epoch: style.checkpoint.meta.epoch }]) {
          const loaded = await models.generator(entry.path);
          snapshots.push({
            label: `epoch ${entry.epoch ?? '?'}`,
            params: generatorParams(loaded.checkpoint),
          });
        }
        const layers: number[] = [];
        for (let r = 8; r <= cfg.resolution; r *= 2) layers.push(r);
        const matrix = await blendMatrix(cfg, generatorParams(base.checkpoint), snapshots, layers, {
          seeds: payload.seeds.slice(0, 2),
          psi: payload.psi,
          direction,
          renderer: models.renderer(),
        });
        const tile = Math.min(128, Math.max(64, cfg.resolution));
        const rows = await Promise.all(
          matrix.rows.map((row) => Promise.all(row.map((cell) => hstack(cell, tile)))),
        );
        const image = await renderGrid({
          rows,
          rowLabels: matrix.rowLabels,
          columnLabels: matrix.columnLabels,
          title: `${style.checkpoint.meta.name}: epochs × swap layers`,
        });
        matrixPath = await writeImage(join(ctx.artifactsDir, 'matrix.png'), await encodeUnderLimit(image));
      }
      ctx.progress({ fraction: 1, stage: 'done' });
      return { gridPath, matrixPath, checkpointPath };
    });
}
