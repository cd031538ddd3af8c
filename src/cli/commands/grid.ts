// `facestyle grid compare ...` (base | style | blend per seed) and `facestyle grid matrix ...`
// (snapshot epochs x swap layers), the pictures of the seed report. Left out, --base is the default
// model, --style the style fine-tuned from it and --snapshots every snapshot of that style; a
// fine-tune run folder gives its best-scored snapshot (compare) or every snapshot, the best marked
// (matrix).
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
import { assertSameArchitecture } from '../../pipelines/blend.ts';
import { bestScored, formatScore } from '../../pipelines/score/best.ts';
import { pickSnapshot, runSnapshots } from '../../pipelines/score/pick.ts';
import { identifySource, readImages } from '../../pipelines/score/sources.ts';
import { StyleMeter } from '../../pipelines/score/toward.ts';
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
  return { files: await Promise.all(entries.map((file) => modelFile(file))) };
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
    .option('--base <file>', 'base checkpoint or model name (default: the default model)')
    .option(
      '--style <file|run>',
      'style checkpoint, or a fine-tune run folder (its best-scored snapshot) (default: the one fine-tuned from the base)',
    )
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
      const picked = opts.style === undefined ? undefined : await pickSnapshot(opts.style);
      if (picked?.note) process.stderr.write(`--style: ${picked.note}\n`);
      const styleFile = picked?.note ? picked.path : await styleModelFile(opts.style, baseFile, '--style');
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
      '--snapshots <files|run>',
      'comma-separated style snapshots, e.g. runs/anime/snapshot-epoch00024.safetensors,..., or a run folder (every snapshot; the best-scored is marked) (default: every snapshot of the style fine-tuned from the base)',
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
    .requiredOption('--out <file>', 'output image: .png, .webp or .jpg')
    .action(async (opts) => {
      const format = imageFormatOf(opts.out);
      const seeds = parseSeeds(opts.seeds, 8);
      const psi = parsePsi(opts.psi);
      const direction = parseDirection(opts.direction);
      const tile = parseNumber('--tile', opts.tile, { integer: true, min: 8 });
      const requestedLayers = parseLayers(opts.layers);
      const baseFile = await baseModelFile(opts.base, '--base');
      const { files, bestPath } =
        opts.snapshots === undefined
          ? { files: await defaultSnapshotFiles(baseFile, '--snapshots'), bestPath: undefined }
          : await matrixSnapshots(String(opts.snapshots));
      await initBackend(program.opts().backend);
      const base = await loadImageGenerator(baseFile);
      const snapshots = [];
      try {
        for (const file of files) {
          const ckpt = await loadImageGenerator(file);
          const label = ckpt.meta.epoch !== undefined ? `epoch ${ckpt.meta.epoch}` : ckpt.meta.name;
          snapshots.push({
            ckpt,
            label: file === bestPath ? `${label} (best)` : label,
            params: generatorParams(ckpt),
          });
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
      const labelCell = await styleCaptions(opts, base.config.G);
      const result = await blendMatrix(
        base.config.G,
        generatorParams(base),
        snapshots,
        layers,
        { seeds, psi, direction },
        labelCell?.caption,
      );
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
      const encoded = await encodeUnderLimit(image, { prefer: format });
      const written = await writeImage(opts.out, encoded);
      disposeCheckpoint(base);
      for (const s of snapshots) disposeCheckpoint(s.ckpt);
      process.stdout.write(`wrote ${written} (${encoded.format}, ${encoded.width}x${encoded.height})\n`);
    });
}
