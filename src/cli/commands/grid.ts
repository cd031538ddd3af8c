// `facestyle grid compare ...` (base | style | blend per seed) and `facestyle grid matrix ...`
// (snapshot epochs x swap layers), the pictures of the seed report. Left out, --base is the default
// model, --style the style fine-tuned from it and --snapshots every snapshot of that style.
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { hstack } from '../../images/compose.ts';
import { encodeUnderLimit } from '../../images/encode.ts';
import { renderGrid } from '../../images/grid.ts';
import { writeImage } from '../../images/index.ts';
import { initBackend } from '../../model/backend.ts';
import { disposeCheckpoint, generatorParams, loadImageGenerator } from '../../model/checkpoint/io.ts';
import { parseSeeds } from '../../model/seeds.ts';
import { assertSameArchitecture } from '../../pipelines/blend.ts';
import { blendComparison, blendMatrix } from '../../pipelines/showcase.ts';
import { baseModelFile, defaultSnapshotFiles, modelFile, styleModelFile } from '../models.ts';
import { imageFormatOf, parseNumber } from '../options.ts';
import { parseDirection } from './blend.ts';
import { parsePsi } from './generate.ts';

function parseLayers(text: string): number[] {
  const layers = text.split(',').map((s) => Number(s.trim()));
  if (layers.some((l) => !Number.isInteger(Math.log2(l)) || l < 4)) {
    throw new UserError(`--layers must be powers of two like 8,16,32,64, got "${text}"`);
  }
  return layers;
}

export function register(program: Command): void {
  const grid = program.command('grid').description('comparison grids of base, style and blended models');

  grid
    .command('compare')
    .description('rows = seeds, columns = base | style | blend')
    .option('--base <file>', 'base checkpoint or model name (default: the default model)')
    .option('--style <file>', 'style checkpoint (default: the one fine-tuned from the base)')
    .requiredOption('--layer <res>', 'swap resolution')
    .option('--width <octaves>', 'soft switch width')
    .option('--direction <dir>', 'texture | structure', 'texture')
    .option('--seeds <list>', 'seeds', '0-3')
    .option('--psi <value>', 'truncation psi', '1')
    .option('--tile <px>', 'tile size', '128')
    .requiredOption('--out <file>', 'output image: .png, .webp or .jpg')
    .action(async (opts) => {
      const format = imageFormatOf(opts.out);
      const layer = parseNumber('--layer', opts.layer, { integer: true, min: 4 });
      const seeds = parseSeeds(opts.seeds, 64);
      const psi = parsePsi(opts.psi);
      const direction = parseDirection(opts.direction);
      const width = opts.width === undefined ? undefined : parseNumber('--width', opts.width);
      const tileSize = parseNumber('--tile', opts.tile, { integer: true, min: 8 });
      const baseFile = await baseModelFile(opts.base, '--base');
      const styleFile = await styleModelFile(opts.style, baseFile, '--style');
      await initBackend(program.opts().backend);
      const base = await loadImageGenerator(baseFile);
      const style = await loadImageGenerator(styleFile);
      const result = await blendComparison(
        base.config.G,
        generatorParams(base),
        generatorParams(style),
        layer,
        { seeds, psi, direction, width },
      );
      const image = await renderGrid({
        ...result,
        tileSize,
        title: `${base.meta.name} × ${style.meta.name}`,
      });
      const encoded = await encodeUnderLimit(image, { prefer: format });
      const written = await writeImage(opts.out, encoded);
      disposeCheckpoint(base);
      disposeCheckpoint(style);
      process.stdout.write(`wrote ${written} (${encoded.format}, ${encoded.width}x${encoded.height})\n`);
    });

  grid
    .command('matrix')
    .description('rows = style snapshots (epochs), columns = swap layers, as the seed report figures')
    .option('--base <file>', 'base checkpoint or model name (default: the default model)')
    .option(
      '--snapshots <files>',
      'comma-separated style snapshots, e.g. runs/anime/snapshot-epoch00024.safetensors,... (default: every snapshot of the style fine-tuned from the base)',
    )
    .option('--layers <list>', 'swap layers', '8,16,32,64')
    .option('--direction <dir>', 'texture | structure', 'texture')
    .option('--seeds <list>', 'seeds shown in every cell', '0-1')
    .option('--psi <value>', 'truncation psi', '1')
    .option('--tile <px>', 'tile size', '96')
    .requiredOption('--out <file>', 'output image: .png, .webp or .jpg')
    .action(async (opts) => {
      const format = imageFormatOf(opts.out);
      const seeds = parseSeeds(opts.seeds, 8);
      const psi = parsePsi(opts.psi);
      const direction = parseDirection(opts.direction);
      const tile = parseNumber('--tile', opts.tile, { integer: true, min: 8 });
      const requestedLayers = parseLayers(opts.layers);
      const baseFile = await baseModelFile(opts.base, '--base');
      const snapshotFiles =
        opts.snapshots === undefined
          ? await defaultSnapshotFiles(baseFile, '--snapshots')
          : await Promise.all(
              String(opts.snapshots)
                .split(',')
                .map((file) => modelFile(file.trim())),
            );
      await initBackend(program.opts().backend);
      const base = await loadImageGenerator(baseFile);
      const snapshots = [];
      try {
        for (const file of snapshotFiles) {
          const ckpt = await loadImageGenerator(file);
          const label = ckpt.meta.epoch !== undefined ? `epoch ${ckpt.meta.epoch}` : ckpt.meta.name;
          snapshots.push({ ckpt, label, params: generatorParams(ckpt) });
          // Refused here, by name, as blend and grid compare refuse it: the matrix renders each
          // snapshot with the base's architecture, which fails deep in the network otherwise.
          assertSameArchitecture(generatorParams(base), generatorParams(ckpt), [
            'base',
            `${file} (${label})`,
          ]);
        }
      } catch (err) {
        disposeCheckpoint(base);
        for (const s of snapshots) disposeCheckpoint(s.ckpt);
        throw err;
      }
      const layers = requestedLayers.filter((l) => l <= base.config.G.resolution);
      if (layers.length === 0)
        throw new UserError(
          `--layers ${opts.layers}: every layer is above the model resolution (${base.config.G.resolution})`,
          `use layers up to ${base.config.G.resolution}, e.g. --layers 8,16`,
        );
      const result = await blendMatrix(base.config.G, generatorParams(base), snapshots, layers, {
        seeds,
        psi,
        direction,
      });
      const rows = await Promise.all(
        result.rows.map((row) => Promise.all(row.map((cell) => hstack(cell, tile)))),
      );
      const image = await renderGrid({
        rows,
        rowLabels: result.rowLabels,
        columnLabels: result.columnLabels,
        title: `${base.meta.name}: blend matrix`,
      });
      const encoded = await encodeUnderLimit(image, { prefer: format });
      const written = await writeImage(opts.out, encoded);
      disposeCheckpoint(base);
      for (const s of snapshots) disposeCheckpoint(s.ckpt);
      process.stdout.write(`wrote ${written} (${encoded.format}, ${encoded.width}x${encoded.height})\n`);
    });
}
