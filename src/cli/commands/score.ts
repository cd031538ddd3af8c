// `facestyle score --real <folder|dataset|zip> --fake <folder|checkpoint> [--num 1000] [--psi 1]
// [--seed 0] [--json]`: KID of generated images against real ones, on the features of a network
// shipped in nsfwjs (named in the output; not Inception, see docs/score.md).
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { initBackend } from '../../model/backend.ts';
import { DEFAULT_FEATURE_NETWORK, FEATURE_NETWORKS } from '../../pipelines/score/features.ts';
import { scoreSources } from '../../pipelines/score/score.ts';
import { parsePsi } from './generate.ts';

interface ScoreCliOptions {
  real: string;
  fake: string;
  num?: string;
  psi: string;
  seed: string;
  features: string;
  subsets: string;
  json?: boolean;
  fid?: boolean;
}

function wholeNumber(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min)
    throw new UserError(`${flag} must be a whole number of at least ${min}, got "${value}"`);
  return n;
}

export function register(program: Command): void {
  program
    .command('score')
    .description(
      'KID of generated images against real ones (lower is better; features from nsfwjs, not Inception)',
    )
    .requiredOption(
      '--real <path>',
      'real images: a folder, a dataset built by `facestyle dataset build`, or a zip',
    )
    .requiredOption(
      '--fake <path>',
      'generated images: a folder, or a generator checkpoint (.safetensors) to render',
    )
    .option('--num <n>', 'images per side (default: 1000, or all the real images when fewer)')
    .option('--psi <value>', 'truncation psi when rendering a checkpoint', '1')
    .option('--seed <n>', 'first seed rendered, and the seed of the subset sampling', '0')
    .option(
      '--features <net>',
      `feature network: ${Object.keys(FEATURE_NETWORKS).join(' | ')}`,
      DEFAULT_FEATURE_NETWORK,
    )
    .option('--subsets <n>', 'KID subsets averaged', '100')
    .option('--fid', 'also FID on the same features (not comparable with Inception FID either)')
    .option('--json', 'print one JSON object')
    .action(async (opts: ScoreCliOptions) => {
      if (!(opts.features in FEATURE_NETWORKS)) {
        throw new UserError(
          `--features must be one of ${Object.keys(FEATURE_NETWORKS).join(', ')}, got "${opts.features}"`,
        );
      }
      const num = opts.num === undefined ? undefined : wholeNumber('--num', opts.num, 2);
      const psi = parsePsi(opts.psi);
      const seed = wholeNumber('--seed', opts.seed, 0);
      const numSubsets = wholeNumber('--subsets', opts.subsets, 1);
      await initBackend(program.opts().backend);
      const report = await scoreSources({
        real: opts.real,
        fake: opts.fake,
        num,
        psi,
        seed,
        network: opts.features,
        numSubsets,
        fid: opts.fid,
        onStage: opts.json ? undefined : (stage) => process.stderr.write(`${stage}\n`),
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
        return;
      }
      process.stdout.write(
        `${report.metric} ${report.kid.toExponential(3)} ± ${report.kid_std.toExponential(2)} ` +
          `(${report.num_fake} generated vs ${report.num_real} real at ${report.resolution}px, ` +
          `${report.num_subsets} subsets of ${report.subset_size}; features ${report.features}; ` +
          `${report.seconds.toFixed(1)} s)\n` +
          (report.fid !== undefined ? `FID on the same features ${report.fid.toFixed(3)}\n` : '') +
          `diversity (mean pairwise feature distance of ${report.diversity_samples} images): generated ` +
          `${report.diversity_fake.toFixed(3)}, real ${report.diversity_real.toFixed(3)} ` +
          `(${(100 * report.diversity_ratio).toFixed(0)}%)\n`,
      );
    });
}
