// `facestyle grid compare ...` (base | style | blend per seed) and `facestyle grid matrix ...`
// (snapshot epochs x swap layers), the pictures of the seed report.
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { hstack } from '../../images/compose.ts';
import { encodeUnderLimit } from '../../images/encode.ts';
import { renderGrid } from '../../images/grid.ts';
import { writeImage } from '../../images/index.ts';
import { initBackend } from '../../model/backend.ts';
import { disposeCheckpoint, generatorParams, loadImageGenerator } from '../../model/checkpoint/io.ts';
import { parseSeeds } from '../../model/seeds.ts';
import { blendComparison, blendMatrix } from '../../pipelines/showcase.ts';
import { parseDirection } from './blend.ts';

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
    .requiredOption('--base <file>', 'base checkpoint')
    .requiredOption('--style <file>', 'style checkpoint')
    .requiredOption('--layer <res>', 'swap resolution')
    .option('--width <octaves>', 'soft switch width')
    .option('--direction <dir>', 'texture | structure', 'texture')
    .option('--seeds <list>', 'seeds', '0-3')
    .option('--psi <value>', 'truncation psi', '1')
    .option('--tile <px>', 'tile size', '128')
    .requiredOption('--out <file>', 'output image')
    .action(async (opts) => {
      await initBackend(program.opts().backend);
      const base = await loadImageGenerator(opts.base);
      const style = await loadImageGenerator(opts.style);
      const result = await blendComparison(
        base.config.G,
        generatorParams(base),
        generatorParams(style),
        Number(opts.layer),
        {
          seeds: parseSeeds(opts.seeds, 64),
          psi: Number(opts.psi),
          direction: parseDirection(opts.direction),
          width: opts.width === undefined ? undefined : Number(opts.width),
        },
      );
      const image = await renderGrid({
        ...result,
        tileSize: Number(opts.tile),
        title: `${base.meta.name} × ${style.meta.name}`,
      });
      const encoded = await encodeUnderLimit(image);
      const written = await writeImage(opts.out, encoded);
      disposeCheckpoint(base);
      disposeCheckpoint(style);
      process.stdout.write(`wrote ${written} (${encoded.format}, ${encoded.width}x${encoded.height})\n`);
    });

  grid
    .command('matrix')
    .description('rows = style snapshots (epochs), columns = swap layers, as the seed report figures')
    .requiredOption('--base <file>', 'base checkpoint')
    .requiredOption(
      '--snapshots <files>',
      'comma-separated style snapshots, e.g. runs/anime/epoch-24.safetensors,...',
    )
    .option('--layers <list>', 'swap layers', '8,16,32,64')
    .option('--direction <dir>', 'texture | structure', 'texture')
    .option('--seeds <list>', 'seeds shown in every cell', '0-1')
    .option('--psi <value>', 'truncation psi', '1')
    .option('--tile <px>', 'tile size', '96')
    .requiredOption('--out <file>', 'output image')
    .action(async (opts) => {
      await initBackend(program.opts().backend);
      const base = await loadImageGenerator(opts.base);
      const snapshots = [];
      for (const file of String(opts.snapshots).split(',')) {
        const ckpt = await loadImageGenerator(file.trim());
        snapshots.push({
          ckpt,
          label: ckpt.meta.epoch !== undefined ? `epoch ${ckpt.meta.epoch}` : ckpt.meta.name,
          params: generatorParams(ckpt),
        });
      }
      const layers = parseLayers(opts.layers).filter((l) => l <= base.config.G.resolution);
      const result = await blendMatrix(base.config.G, generatorParams(base), snapshots, layers, {
        seeds: parseSeeds(opts.seeds, 8),
        psi: Number(opts.psi),
        direction: parseDirection(opts.direction),
      });
      const tile = Number(opts.tile);
      const rows = await Promise.all(
        result.rows.map((row) => Promise.all(row.map((cell) => hstack(cell, tile)))),
      );
      const image = await renderGrid({
        rows,
        rowLabels: result.rowLabels,
        columnLabels: result.columnLabels,
        title: `${base.meta.name}: blend matrix`,
      });
      const encoded = await encodeUnderLimit(image);
      const written = await writeImage(opts.out, encoded);
      disposeCheckpoint(base);
      for (const s of snapshots) disposeCheckpoint(s.ckpt);
      process.stdout.write(`wrote ${written} (${encoded.format}, ${encoded.width}x${encoded.height})\n`);
    });
}
