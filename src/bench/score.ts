// `npm run bench -- score`: what KID of 1000 vs 1000 images costs. The feature network dominates:
// each image is resized to the network input and featurised (timed on `--images` real images of
// each size, then projected to 2000), plus the KID itself on 1000 x 1000 feature vectors (timed
// in full).
import type { Command } from 'commander';
import { positiveInt } from '../cli/options.ts';
import { renderDemoFace } from '../demo/data.ts';
import type { RgbImage } from '../images/tensor-image.ts';
import { initBackend } from '../model/backend.ts';
import { NumpyRandomState } from '../model/seeds.ts';
import { FEATURE_NETWORKS, FeatureExtractor } from '../pipelines/score/features.ts';
import { kernelInceptionDistance } from '../pipelines/score/kid.ts';
import { decodeImage } from '../pipelines/score/sources.ts';
import { machineDescription, markdownTable, today } from './common.ts';

const PER_SIDE = 1000;

export function register(bench: Command): void {
  bench
    .command('score')
    .description('seconds for KID of 1000 vs 1000 images at 64 and 256 px, per feature network')
    .option('--images <n>', 'images featurised per measurement (projected to 2000)', '32')
    .option('--sizes <list>', 'image sizes', '64,256')
    .option('--networks <list>', 'feature networks', Object.keys(FEATURE_NETWORKS).join(','))
    .action(async (opts: { images: string; sizes: string; networks: string }, cmd: Command) => {
      const info = await initBackend(cmd.optsWithGlobals().backend);
      const count = positiveInt('--images', opts.images);
      const sizes = opts.sizes.split(',').map((s) => positiveInt('--sizes', s.trim()));
      const rows: Array<Array<string | number>> = [];
      for (const id of opts.networks.split(',').map((s) => s.trim())) {
        const extractor = await FeatureExtractor.load(id);
        const dims = extractor.network.dims;
        // KID on 1000 x 1000 vectors of this size, timed in full.
        const rng = new NumpyRandomState(1);
        const features = () => ({
          count: PER_SIDE,
          dims,
          values: Float32Array.from({ length: PER_SIDE * dims }, () => Math.abs(rng.gauss())),
        });
        const real = features();
        const fake = features();
        const kidStarted = performance.now();
        kernelInceptionDistance(real, fake);
        const kidSeconds = (performance.now() - kidStarted) / 1000;
        for (const size of sizes) {
          const images: RgbImage[] = [];
          for (let seed = 0; seed < count; seed++)
            images.push(await decodeImage(await renderDemoFace('lorelei', seed, size), size));
          await extractor.features(images.slice(0, 2)); // warm-up: kernels, memory
          const started = performance.now();
          await extractor.features(images);
          const perImage = (performance.now() - started) / 1000 / count;
          rows.push([
            today(),
            info.name,
            id,
            size,
            count,
            (perImage * 1000).toFixed(1),
            kidSeconds.toFixed(2),
            (2 * PER_SIDE * perImage + kidSeconds).toFixed(0),
          ]);
        }
        extractor.dispose();
      }
      process.stdout.write(`Machine: ${machineDescription(info)}; backend ${info.name} (${info.detail})\n\n`);
      process.stdout.write(
        `${markdownTable(
          [
            'date',
            'backend',
            'features',
            'image px',
            'images timed',
            'ms / image (resize + features)',
            'KID of 1000 x 1000 vectors, s',
            'projected s for 1000 vs 1000',
          ],
          rows,
        )}\n`,
      );
    });
}
