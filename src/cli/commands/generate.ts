// `facestyle generate [--checkpoint F] --seeds 1-16 --psi 0.7 --out grid.png` (the default model
// without --checkpoint; the grid in the format --out's extension names)
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { encodeUnderLimit } from '../../images/encode.ts';
import { renderGrid } from '../../images/grid.ts';
import { writeImage } from '../../images/index.ts';
import { type RgbImage, tensorToRgb } from '../../images/tensor-image.ts';
import { initBackend } from '../../model/backend.ts';
import { disposeCheckpoint, generatorParams, loadImageGenerator } from '../../model/checkpoint/io.ts';
import { NOISE_MODES, type NoiseMode } from '../../model/config.ts';
import { Generator } from '../../model/networks/generator.ts';
import { generateFromSeeds } from '../../model/sampling.ts';
import { parseSeeds } from '../../model/seeds.ts';
import { baseModelFile } from '../models.ts';
import { imageFormatOf, parseNumber } from '../options.ts';
import { createProgress } from '../progress.ts';

interface GenerateCliOptions {
  checkpoint?: string;
  seeds: string;
  psi: string;
  cutoff?: string;
  noise: NoiseMode;
  out: string;
  columns?: string;
  batch: string;
  tile?: string;
}

export function parsePsi(value: string): number {
  return parseNumber('--psi', value, { min: -1, max: 2 });
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('generate a labelled image grid from seeds (the same faces as NVIDIA gen_images.py --seeds)')
    .option(
      '--checkpoint <file>',
      'model checkpoint (.safetensors) or model name (default: the default model)',
    )
    .option('--seeds <list>', 'seeds, e.g. 1-16,42', '0-7')
    .option('--psi <value>', 'truncation psi', '1')
    .option('--cutoff <n>', 'truncate only the first n ws')
    .option('--noise <mode>', 'noise mode: const | random | none', 'const')
    .option('--columns <n>', 'grid columns (default: about square)')
    .option('--batch <n>', 'images per forward pass', '8')
    .option('--tile <px>', 'tile size in the grid (default: model resolution, at least 128)')
    .requiredOption('--out <file>', 'output image: .png, .webp or .jpg (another format only above 10 MiB)')
    .action(async (opts: GenerateCliOptions) => {
      const format = imageFormatOf(opts.out);
      const seeds = parseSeeds(opts.seeds);
      const psi = parsePsi(opts.psi);
      if (!(NOISE_MODES as readonly string[]).includes(opts.noise))
        throw new UserError(`--noise must be const, random or none, got "${opts.noise}"`);
      const batchSize = parseNumber('--batch', opts.batch, { integer: true, min: 1 });
      const checkpoint = await baseModelFile(opts.checkpoint, '--checkpoint');
      await initBackend(program.opts().backend);
      const ckpt = await loadImageGenerator(checkpoint);
      const G = new Generator(ckpt.config.G, generatorParams(ckpt));
      const tiles: RgbImage[] = [];
      const bar = createProgress('generating', seeds.length);
      await generateFromSeeds(
        G,
        seeds,
        async (images) => {
          tiles.push(...(await tensorToRgb(images)));
        },
        {
          psi,
          cutoff: opts.cutoff === undefined ? null : parseNumber('--cutoff', opts.cutoff, { integer: true }),
          noiseMode: opts.noise,
          batchSize,
          onProgress: (done) => bar.update(done),
        },
      );
      bar.stop();
      disposeCheckpoint(ckpt);
      const columns = opts.columns
        ? parseNumber('--columns', opts.columns, { integer: true, min: 1 })
        : Math.ceil(Math.sqrt(seeds.length));
      const grid = await renderGrid({
        tiles,
        columns,
        tileLabels: seeds.map((s) => `seed ${s}`),
        title: `${ckpt.meta.name} · psi ${psi}`,
        tileSize: opts.tile
          ? parseNumber('--tile', opts.tile, { integer: true, min: 8 })
          : Math.max(128, ckpt.config.G.resolution),
      });
      const encoded = await encodeUnderLimit(grid, { prefer: format });
      const written = await writeImage(opts.out, encoded);
      process.stdout.write(
        `wrote ${written} (${seeds.length} images, ${encoded.format}, ${encoded.width}x${encoded.height})\n`,
      );
    });
}
