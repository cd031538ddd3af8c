// `facestyle import <file> --out checkpoints/NAME.safetensors [--name NAME] [--dtype F32|F16|BF16]
//   [--mbstd-group N] [--conv-clamp N|none]`
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { initBackend } from '../../model/backend.ts';
import type { ConfigHints } from '../../model/checkpoint/io.ts';
import type { FloatWriteDType } from '../../model/checkpoint/safetensors.ts';
import { type ImportReport, importWeights } from '../../model/import/importer.ts';
import { createProgress, type Progress } from '../progress.ts';

interface ImportCliOptions {
  out: string;
  name?: string;
  dtype: string;
  mbstdGroup?: string;
  convClamp?: string;
}

export function parseDType(value: string): FloatWriteDType {
  if (value !== 'F32' && value !== 'F16' && value !== 'BF16')
    throw new UserError(`--dtype must be F32, F16 or BF16, got "${value}"`);
  return value;
}

export function parseHints(opts: { mbstdGroup?: string; convClamp?: string }): ConfigHints {
  const hints: ConfigHints = {};
  if (opts.mbstdGroup !== undefined) {
    const group = Number(opts.mbstdGroup);
    if (!Number.isInteger(group) || group < 1)
      throw new UserError(`--mbstd-group must be a positive integer, got "${opts.mbstdGroup}"`);
    hints.mbstdGroupSize = group;
  }
  if (opts.convClamp !== undefined) {
    const clamp = opts.convClamp === 'none' ? null : Number(opts.convClamp);
    if (clamp !== null && !(Number.isFinite(clamp) && clamp > 0))
      throw new UserError(`--conv-clamp must be a positive number or "none", got "${opts.convClamp}"`);
    hints.convClamp = clamp;
  }
  return hints;
}

export function describeImport(report: ImportReport): string {
  const { G } = report.config;
  const megabytes = report.sourceBytes / 1e6;
  return [
    `imported ${report.meta.extra?.importedFrom} (${report.format}, ${report.naming} names): ${report.networks.join(' + ')}, ` +
      `${G.resolution}px, z ${G.zDim}, w ${G.wDim}, ${G.mappingLayers} mapping layers, channels ${G.channelBase}/${G.channelMax}` +
      (report.config.D ? `, mbstd group ${report.config.D.mbstdGroupSize}` : ''),
    `${megabytes.toFixed(1)} MB in ${report.seconds.toFixed(1)} s (${(megabytes / report.seconds).toFixed(1)} MB/s), sha256 ${report.sha256}`,
    ...((report.meta.extra?.wAvg as string | undefined) ? [`w_avg ${report.meta.extra?.wAvg}`] : []),
    `wrote ${report.out}`,
  ].join('\n');
}

export function register(program: Command): void {
  program
    .command('import')
    .description(
      'import StyleGAN2 weights (NVIDIA .pkl, torch.save .pt/.pth, .safetensors; NVIDIA or rosinality names) as a checkpoint',
    )
    .argument('<file>', 'weights file')
    .requiredOption('--out <file>', 'checkpoint to write (.safetensors)')
    .option('--name <name>', 'checkpoint name (default: the file name)')
    .option('--dtype <type>', 'storage type for weights: F32 | F16 | BF16', 'F32')
    .option(
      '--mbstd-group <n>',
      "D's minibatch-std group size when the file does not record it (default 4; paper256: 8)",
    )
    .option('--conv-clamp <n|none>', 'activation clamp when the file does not record it (default 256)')
    .action(async (file: string, opts: ImportCliOptions) => {
      const dtype = parseDType(opts.dtype);
      const hints = parseHints(opts);
      // Importing only moves data (and may run the mapping network to estimate w_avg): the CPU
      // backend avoids uploading every weight to a GPU just to download it again.
      await initBackend(program.opts().backend ?? 'cpu');
      await mkdir(dirname(opts.out), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        throw new UserError(
          `cannot create ${dirname(opts.out)} (${err.code ?? err.message})`,
          'import to a folder you can write to with --out',
        );
      });
      let progress: Progress | undefined;
      try {
        const report = await importWeights(file, {
          out: opts.out,
          name: opts.name,
          dtype,
          hints,
          onProgress: (done, total) => {
            progress ??= createProgress('reading tensors', total);
            progress.update(done);
          },
        });
        progress?.stop();
        process.stdout.write(`${describeImport(report)}\n`);
      } finally {
        progress?.stop();
      }
    });
}
