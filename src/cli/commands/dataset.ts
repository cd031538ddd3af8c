// `facestyle dataset build --in archive.zip --out datasets/NAME --res 256 [--align auto|faces|center]`
import type { Command } from 'commander';
import {
  type ArchiveLimits,
  buildDataset,
  DatasetError,
  type DatasetProgress,
  summarizeDataset,
} from '../../datasets/index.ts';
import { ALIGN_MODES, type AlignMode, type MultipleFacesPolicy } from '../../datasets/types.ts';
import { UserError } from '../../errors.ts';
import { parseNumber } from '../options.ts';
import { createProgress, type Progress } from '../progress.ts';

interface DatasetBuildCliOptions {
  in: string;
  out: string;
  res: string;
  align: string;
  multipleFaces: string;
  minImages: string;
  minFaceSize: string;
  duplicateDistance: string;
  maxEntries?: string;
  maxTotalMb?: string;
  maxFileMb?: string;
  maxRatio?: string;
  maxMegapixels?: string;
}

function parseChoice<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new UserError(`${flag} must be one of ${choices.join(', ')}, got "${value}"`);
}

function parseLimits(opts: DatasetBuildCliOptions): Partial<ArchiveLimits> {
  const limits: Partial<ArchiveLimits> = {};
  const MiB = 2 ** 20;
  if (opts.maxEntries)
    limits.maxEntries = parseNumber('--max-entries', opts.maxEntries, { integer: true, min: 1 });
  if (opts.maxTotalMb)
    limits.maxTotalBytes = parseNumber('--max-total-mb', opts.maxTotalMb, { min: 1 }) * MiB;
  if (opts.maxFileMb) limits.maxFileBytes = parseNumber('--max-file-mb', opts.maxFileMb, { min: 1 }) * MiB;
  if (opts.maxRatio) limits.maxCompressionRatio = parseNumber('--max-ratio', opts.maxRatio, { min: 1 });
  if (opts.maxMegapixels)
    limits.maxPixels = parseNumber('--max-megapixels', opts.maxMegapixels, { min: 1 }) * 1e6;
  return limits;
}

/** A bar when the entry count is known up front (zip, folder); a line every 100 entries for a tar. */
function progressReporter(): { onProgress: (p: DatasetProgress) => void; stop: () => void } {
  let bar: Progress | undefined;
  return {
    onProgress(p) {
      if (p.total !== null) {
        bar ??= createProgress('dataset', p.total);
        bar.update(p.done, { kept: p.kept });
      } else if (p.done % 100 === 0) {
        process.stderr.write(`dataset: ${p.done} entries read, ${p.kept} kept\n`);
      }
    },
    stop: () => bar?.stop(),
  };
}

export function register(program: Command): void {
  const dataset = program.command('dataset').description('build training datasets from uploaded images');
  dataset
    .command('build')
    .description(
      'extract, check, align and deduplicate images from an archive or folder into a dataset folder',
    )
    .requiredOption('--in <path>', 'a .zip, .tar.gz or .tar archive, or a folder of images')
    .requiredOption('--out <dir>', 'dataset folder to create, e.g. datasets/NAME')
    .option('--res <px>', 'output resolution (the model resolution)', '256')
    .option(
      '--align <mode>',
      'faces: FFHQ alignment of detected faces; center: centre crop (drawn art); auto: faces where found, else centre',
      'faces',
    )
    .option('--multiple-faces <policy>', 'photos with several faces: largest | all | skip', 'largest')
    .option('--min-images <n>', 'refuse the dataset with fewer usable images', '1')
    .option('--min-face-size <fraction>', 'smallest face crop, as a fraction of --res', '0.5')
    .option(
      '--duplicate-distance <bits>',
      'dHash bits two images may differ by and still be duplicates (-1: off)',
      '6',
    )
    .option('--max-entries <n>', 'archive limit: entries')
    .option('--max-total-mb <n>', 'archive limit: uncompressed MiB in all')
    .option('--max-file-mb <n>', 'archive limit: uncompressed MiB per file')
    .option('--max-ratio <n>', 'archive limit: compression ratio')
    .option('--max-megapixels <n>', 'image limit: megapixels per image')
    .action(async (opts: DatasetBuildCliOptions) => {
      const progress = progressReporter();
      try {
        const report = await buildDataset({
          input: opts.in,
          outDir: opts.out,
          resolution: parseNumber('--res', opts.res, { integer: true, min: 8 }),
          align: parseChoice<AlignMode>('--align', opts.align, ALIGN_MODES),
          multipleFaces: parseChoice<MultipleFacesPolicy>('--multiple-faces', opts.multipleFaces, [
            'largest',
            'all',
            'skip',
          ]),
          minImages: parseNumber('--min-images', opts.minImages, { integer: true }),
          minFaceSize: parseNumber('--min-face-size', opts.minFaceSize),
          duplicateDistance: parseNumber('--duplicate-distance', opts.duplicateDistance, {
            integer: true,
            min: -1,
          }),
          limits: parseLimits(opts),
          onProgress: progress.onProgress,
        });
        progress.stop();
        process.stdout.write(`${summarizeDataset(report)}\n`);
        if (report.contactSheet) process.stdout.write(`contact sheet: ${report.contactSheet}\n`);
      } catch (err) {
        progress.stop();
        // Too few usable images: nothing was written, but the counts say why.
        if (err instanceof DatasetError && err.report)
          process.stdout.write(`${summarizeDataset(err.report)}\n`);
        throw err;
      }
    });
}
