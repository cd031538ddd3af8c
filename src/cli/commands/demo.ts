// `facestyle demo data --out DIR [--res 64] [--set faces|lorelei|...] [--count N] [--seed S]`:
// renders the demo models' training sets (src/demo/data.ts), the same bytes for the same seed, so
// anyone can retrain or score the demo models against exactly what they were trained on.
import type { Command } from 'commander';
import { DEMO_STYLES, isDemoDataset, writeDemoDataset } from '../../demo/data.ts';
import { UserError } from '../../errors.ts';
import { createProgress } from '../progress.ts';

interface DemoDataCliOptions {
  out: string;
  res: string;
  set: string;
  count?: string;
  seed: string;
}

/** The sizes of the sets scripts/train-demo-models.sh trains on. */
export const DEMO_SET_COUNTS = { faces: 10_000, style: 400 } as const;

function parseWhole(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min) {
    throw new UserError(`${flag} must be a whole number of at least ${min}, got "${value}"`);
  }
  return n;
}

export function register(program: Command): void {
  const demo = program.command('demo').description('the demo models and their training data');
  demo
    .command('data')
    .description('render a demo training set (procedural, deterministic from --seed) into a folder')
    .requiredOption('--out <dir>', 'folder to write 000000.png, 000001.png ... and LICENSE.txt into')
    .option('--res <px>', 'image size', '64')
    .option('--set <name>', `faces (facesjs people) or a style: ${DEMO_STYLES.join(', ')}`, 'faces')
    .option(
      '--count <n>',
      `images (default ${DEMO_SET_COUNTS.faces} for faces, ${DEMO_SET_COUNTS.style} for a style)`,
    )
    .option('--seed <n>', 'seed of the set: the same seed gives the same images', '0')
    .action(async (opts: DemoDataCliOptions) => {
      if (!isDemoDataset(opts.set)) {
        throw new UserError(`--set must be faces or one of ${DEMO_STYLES.join(', ')}, got "${opts.set}"`);
      }
      const set = opts.set;
      const resolution = parseWhole('--res', opts.res, 8);
      const count = opts.count
        ? parseWhole('--count', opts.count, 1)
        : set === 'faces'
          ? DEMO_SET_COUNTS.faces
          : DEMO_SET_COUNTS.style;
      const seed = parseWhole('--seed', opts.seed, 0);
      const bar = createProgress(`demo ${set}`, count);
      try {
        await writeDemoDataset(set, opts.out, count, resolution, {
          seed,
          onProgress: (done) => bar.update(done),
        });
      } finally {
        bar.stop();
      }
      process.stdout.write(
        `wrote ${count} ${set} images, ${resolution}x${resolution}, seed ${seed}, to ${opts.out}\n`,
      );
    });
}
