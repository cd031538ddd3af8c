// generate: seeds -> images. Jobs that share a model and truncation arrive together and run as one
// batched forward pass; each job still gets its own images and grid.
import { join } from 'node:path';
import { encodeUnderLimit, type RgbImage, renderGrid, tensorToRgb, writeImage } from '../../images/index.ts';
import { generateFromSeeds } from '../../model/sampling.ts';
import { onnxImagesFromSeeds } from '../../pipelines/engine.ts';
import type { GenerateResult, JobKinds } from '../kinds.ts';
import type { WorkerModels } from './models.ts';
import type { BatchHandler } from './registry.ts';

/** Images per forward pass: bounds memory however many jobs are batched. */
const MAX_IMAGES_PER_PASS = Number(process.env.FACESTYLE_GENERATE_BATCH ?? 16);

export function generateHandler(models: WorkerModels): BatchHandler<JobKinds, 'generate'> {
  return (items, batch) =>
    models.withScope(async (scope) => {
      const first = items[0].payload;
      const { G, onnx, checkpoint } = await scope.generator(first.checkpoint);
      const allSeeds = items.flatMap((item) => item.payload.seeds);
      const images: RgbImage[] = [];
      const started = Date.now();
      const onProgress = (done: number, total: number) => {
        batch.signal.throwIfAborted();
        const elapsed = (Date.now() - started) / 1000;
        batch.progress({
          fraction: (0.9 * done) / total,
          stage: `generated ${done}/${total} images`,
          etaSeconds: done ? (elapsed / done) * (total - done) : undefined,
        });
      };
      const options = {
        psi: first.psi,
        noiseMode: first.noiseMode ?? 'const',
        // Part of the batch key: every job of the batch varies the same face, or none does.
        ...(first.variation ? { variation: first.variation } : {}),
        batchSize: MAX_IMAGES_PER_PASS,
        onProgress,
      };
      if (onnx) {
        images.push(...(await onnxImagesFromSeeds(onnx, allSeeds, options)));
      } else {
        await generateFromSeeds(
          G,
          allSeeds,
          async (batchImages) => {
            batch.signal.throwIfAborted();
            images.push(...(await tensorToRgb(batchImages)));
          },
          options,
        );
      }

      const results: Array<GenerateResult | Error> = [];
      let offset = 0;
      for (const { payload, ctx } of items) {
        const own = images.slice(offset, offset + payload.seeds.length);
        offset += payload.seeds.length;
        try {
          const imagePaths: string[] = [];
          for (const [i, image] of own.entries()) {
            const encoded = await encodeUnderLimit(image);
            imagePaths.push(
              await writeImage(join(ctx.artifactsDir, `seed-${payload.seeds[i]}.png`), encoded),
            );
          }
          let gridPath: string | undefined;
          if (payload.grid ?? true) {
            const grid = await renderGrid({
              tiles: own,
              columns: Math.ceil(Math.sqrt(own.length)),
              tileLabels: payload.seeds.map((s) =>
                payload.variation ? `seed ${payload.variation.of} ~${s}` : `seed ${s}`,
              ),
              title: `${checkpoint.meta.name} · psi ${payload.psi}`,
              tileSize: Math.max(128, checkpoint.config.G.resolution),
            });
            gridPath = await writeImage(join(ctx.artifactsDir, 'grid.png'), await encodeUnderLimit(grid));
          }
          results.push({ imagePaths, gridPath });
        } catch (err) {
          results.push(err as Error);
        }
      }
      batch.progress({ fraction: 1, stage: 'done' });
      return results;
    });
}
