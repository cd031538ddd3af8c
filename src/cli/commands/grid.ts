// `facestyle grid compare ...` (base | style | blend per seed) and `facestyle grid matrix ...`
// (snapshot epochs x swap layers), the pictures of the seed report.
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { hstack } from '../../images/compose.ts';
import { encodeUnderLimit } from '../../images/encode.ts';
import { renderGrid } from '../../images/grid.ts';
import { writeImage } from '../../images/index.ts';
import { initBackend } from '../../model/backend.ts';
import { disposeCheckpoint, generatorParams, loadImageGenerator } from '../../model/checkpoint/io.ts';
import type { GeneratorConfig } from '../../model/config.ts';
import { Generator } from '../../model/networks/generator.ts';
import type { ParamStore } from '../../model/params.ts';
import { parseSeeds } from '../../model/seeds.ts';
import { bestScored, formatScore } from '../../pipelines/score/best.ts';
import { pickSnapshot, runSnapshots } from '../../pipelines/score/pick.ts';
import { identifySource, readImages } from '../../pipelines/score/sources.ts';
import { StyleMeter } from '../../pipelines/score/toward.ts';
import { blendComparison, blendMatrix } from '../../pipelines/showcase.ts';
import { parseDirection } from './blend.ts';

function parseLayers(text: string): number[] {
  const layers = text.split(',').map((s) => Number(s.trim()));
  if (layers.some((l) => !Number.isInteger(Math.log2(l)) || l < 4)) {
    throw new UserError(`--layers must be powers of two like 8,16,32,64, got "${text}"`);
  }
  return layers;
}

/** The matrix rows: the files given, or every snapshot of a run folder (and its best-scored one). */
async function matrixSnapshots(list: string): Promise<{ files: string[]; bestPath?: string }> {
  const entries = list.split(',').map((f) => f.trim());
  if (entries.length === 1 && (await stat(entries[0]).catch(() => null))?.isDirectory()) {
    const snapshots = await runSnapshots(entries[0]);
    const best = bestScored(snapshots);
    if (best)
      process.stderr.write(`best-scored snapshot: epoch ${best.epoch} (${formatScore(best.score!)})\n`);
    return { files: snapshots.map((s) => s.path), bestPath: best?.path };
  }
  return { files: entries };
}

/** Captions "→style 62%" for each matrix cell, when both training sets are given. */
async function styleCaptions(
  opts: { baseData?: string; styleData?: string; scoreNum: string },
  cfg: GeneratorConfig,
): Promise<{ caption: (params: ParamStore) => Promise<string>; metric: string } | undefined> {
  if (!opts.baseData && !opts.styleData) return undefined;
  if (!opts.baseData || !opts.styleData)
    throw new UserError('give both --base-data and --style-data to caption the matrix');
  const count = Number(opts.scoreNum);
  if (!(Number.isInteger(count) && count >= 2))
    throw new UserError(`--score-num must be a whole number of at least 2, got "${opts.scoreNum}"`);
  const read = async (dir: string) =>
    readImages(await identifySource(dir), { count, size: cfg.resolution, seed: 0 });
  const meter = await StyleMeter.create(await read(opts.baseData), await read(opts.styleData), { count });
  const seen = new Map<ParamStore, string>();
  return {
    metric: meter.metric,
    caption: async (params) => {
      let text = seen.get(params);
      if (text === undefined) {
        const position = await meter.measure(new Generator(cfg, params));
        text = `→style ${(100 * position.toward).toFixed(0)}%`;
        seen.set(params, text);
      }
      return text;
    },
  };
}

export function register(program: Command): void {
  const grid = program.command('grid').description('comparison grids of base, style and blended models');

  grid
    .command('compare')
    .description('rows = seeds, columns = base | style | blend')
    .requiredOption('--base <file>', 'base checkpoint')
    .requiredOption(
      '--style <file|run>',
      'style checkpoint, or a fine-tune run folder (its best-scored snapshot)',
    )
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
      const picked = await pickSnapshot(opts.style);
      if (picked.note) process.stderr.write(`style: ${picked.note}\n`);
      const style = await loadImageGenerator(picked.path);
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
      '--snapshots <files|run>',
      'comma-separated style snapshots, e.g. runs/anime/snapshot-epoch00024.safetensors,..., or a run folder (every snapshot; the best-scored is marked)',
    )
    .option('--layers <list>', 'swap layers', '8,16,32,64')
    .option(
      '--base-data <dir>',
      "the base's training images: with --style-data, caption each cell with how far it moved toward the style",
    )
    .option('--style-data <dir>', "the style's training images (folder, dataset or zip)")
    .option('--score-num <n>', 'images per cell for those captions (KID against both sets)', '64')
    .option('--direction <dir>', 'texture | structure', 'texture')
    .option('--seeds <list>', 'seeds shown in every cell', '0-1')
    .option('--psi <value>', 'truncation psi', '1')
    .option('--tile <px>', 'tile size', '96')
    .requiredOption('--out <file>', 'output image')
    .action(async (opts) => {
      await initBackend(program.opts().backend);
      const base = await loadImageGenerator(opts.base);
      const snapshots = [];
      const { files, bestPath } = await matrixSnapshots(String(opts.snapshots));
      for (const file of files) {
        const ckpt = await loadImageGenerator(file);
        const label = ckpt.meta.epoch !== undefined ? `epoch ${ckpt.meta.epoch}` : ckpt.meta.name;
        snapshots.push({
          ckpt,
          label: file === bestPath ? `${label} (best)` : label,
          params: generatorParams(ckpt),
        });
      }
      const layers = parseLayers(opts.layers).filter((l) => l <= base.config.G.resolution);
      const labelCell = await styleCaptions(opts, base.config.G);
      const result = await blendMatrix(
        base.config.G,
        generatorParams(base),
        snapshots,
        layers,
        {
          seeds: parseSeeds(opts.seeds, 8),
          psi: Number(opts.psi),
          direction: parseDirection(opts.direction),
        },
        labelCell?.caption,
      );
      const tile = Number(opts.tile);
      const rows = await Promise.all(
        result.rows.map((row) => Promise.all(row.map((cell) => hstack(cell, tile)))),
      );
      const image = await renderGrid({
        rows,
        rowLabels: result.rowLabels,
        columnLabels: result.columnLabels,
        ...(result.cellLabels ? { tileLabels: result.cellLabels } : {}),
        title: labelCell
          ? `${base.meta.name}: blend matrix · →style: KID share toward the style's images (${labelCell.metric})`
          : `${base.meta.name}: blend matrix`,
      });
      const encoded = await encodeUnderLimit(image);
      const written = await writeImage(opts.out, encoded);
      disposeCheckpoint(base);
      for (const s of snapshots) disposeCheckpoint(s.ckpt);
      process.stdout.write(`wrote ${written} (${encoded.format}, ${encoded.width}x${encoded.height})\n`);
    });
}
