// `facestyle toonify --photo P --base F --blend B --out DIR [--steps 500] [--lr 0.1] [--face largest|N]`
// (or `--style S --layer N` instead of a saved blend). Ctrl-C cancels at the next projection step.
import { join } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { initBackend } from '../../model/backend.ts';
import { type FaceChoice, parseFaceChoice, type StyleSwap, toonify } from '../../pipelines/toonify.ts';
import { createProgress, type Progress } from '../progress.ts';
import { parseDirection } from './blend.ts';

interface ToonifyCliOptions {
  photo: string;
  base: string;
  blend?: string;
  style?: string;
  layer?: string;
  width?: string;
  direction: string;
  out: string;
  face?: string;
  steps: string;
  lr: string;
  pixelWeight: string;
  perceptualWeight: string;
  noise: boolean;
  w: boolean;
  seed: string;
  previewEvery: string;
  keepIntermediates?: boolean;
}

function numberOption(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n))
    throw new UserError(`${flag} must be a number, got "${value}"`);
  return n;
}

function blendSource(opts: ToonifyCliOptions): string | StyleSwap {
  if (opts.blend && opts.style)
    throw new UserError('give either --blend (a saved blend) or --style with --layer, not both');
  if (opts.blend) return opts.blend;
  if (!opts.style || opts.layer === undefined)
    throw new UserError(
      'say how to stylise: --blend <file> (a saved blend), or --style <file> --layer <res>',
    );
  return {
    style: opts.style,
    layer: numberOption(opts.layer, '--layer'),
    width: opts.width === undefined ? undefined : numberOption(opts.width, '--width'),
    direction: parseDirection(opts.direction),
  };
}

export function register(program: Command): void {
  program
    .command('toonify')
    .description('stylise a face photo: project it into the base model and render it with a blend')
    .requiredOption('--photo <file>', 'photo with a face (JPEG, PNG, WebP)')
    .requiredOption(
      '--base <file>',
      'base checkpoint the blend was made from (with its discriminator, ideally)',
    )
    .option('--blend <file>', 'saved blend checkpoint (facestyle blend)')
    .option('--style <file>', 'style checkpoint, blended now with --layer')
    .option('--layer <res>', 'with --style: swap resolution')
    .option('--width <octaves>', 'with --style: soft switch width (0 = hard cut)')
    .option('--direction <dir>', 'with --style: texture | structure', 'texture')
    .requiredOption(
      '--out <dir>',
      'output folder: toonify.png, original.png, reconstruction.png, stylised.png',
    )
    .option('--face <which>', 'with several faces: largest, or N (0 = largest)')
    .option('--steps <n>', 'projection steps', '500')
    .option('--lr <rate>', 'peak learning rate', '0.1')
    .option('--pixel-weight <w>', 'weight of the pixel loss', '1')
    .option('--perceptual-weight <w>', 'weight of the discriminator-feature loss (0: off)', '1')
    .option('--no-noise', 'keep the model noise fixed instead of optimising it')
    .option('--w', 'project into W (one w for all layers) instead of W+')
    .option('--seed <n>', 'seed of the projection randomness', '303')
    .option('--preview-every <n>', 'steps between previews (out/preview.png while running)', '50')
    .option('--keep-intermediates', 'keep the aligned crop and previews instead of deleting them')
    .action(async (opts: ToonifyCliOptions) => {
      const blend = blendSource(opts);
      const face: FaceChoice | undefined = opts.face === undefined ? undefined : parseFaceChoice(opts.face);
      const steps = numberOption(opts.steps, '--steps');
      const info = await initBackend(program.opts().backend);
      const controller = new AbortController();
      const quit = () => process.exit(130);
      const onInterrupt = () => {
        process.stderr.write('\ncancelling at the next step (Ctrl-C again to quit at once)\n');
        controller.abort();
        process.once('SIGINT', quit);
      };
      process.once('SIGINT', onInterrupt);
      const previewPath = join(opts.out, 'preview.png');
      let bar: Progress | undefined;
      try {
        const result = await toonify({
          photoPath: opts.photo,
          baseCheckpoint: opts.base,
          blend,
          outDir: opts.out,
          face,
          steps,
          learningRate: numberOption(opts.lr, '--lr'),
          pixelWeight: numberOption(opts.pixelWeight, '--pixel-weight'),
          perceptualWeight: numberOption(opts.perceptualWeight, '--perceptual-weight'),
          optimizeNoise: opts.noise,
          wPlus: !opts.w,
          seed: numberOption(opts.seed, '--seed'),
          previewEvery: numberOption(opts.previewEvery, '--preview-every'),
          keepIntermediates: opts.keepIntermediates,
          previewPath,
          backend: info.name,
          signal: controller.signal,
          onProgress: ({ stage, projection }) => {
            if (stage === 'aligning') process.stderr.write('finding and aligning the face\n');
            if (stage === 'loading') process.stderr.write('loading the models\n');
            if (stage !== 'projecting' || !projection) return;
            if (!bar) {
              process.stderr.write(`preview: ${previewPath} (every ${opts.previewEvery} steps)\n`);
              bar = createProgress('projecting', projection.steps);
            }
            bar.update(projection.step, { loss: projection.loss.toPrecision(4) });
          },
        });
        bar?.stop();
        const { metrics, face: chosen } = result;
        process.stdout.write(
          `face ${chosen.index} of ${chosen.count} (score ${chosen.score})\n` +
            `wrote ${result.gridPath}, ${result.originalPath}, ${result.reconstructionPath}, ${result.stylisedPath}\n` +
            `reconstruction PSNR ${metrics.psnr.toFixed(2)} dB, final loss ${metrics.finalLoss.toPrecision(4)}, ` +
            `${metrics.steps} steps in ${metrics.projectionSeconds.toFixed(1)} s ` +
            `(${metrics.stepsPerSecond.toFixed(2)} steps/s on ${metrics.backend})\n` +
            (result.intermediatesDir ? `intermediates kept in ${result.intermediatesDir}\n` : ''),
        );
      } finally {
        bar?.stop();
        process.removeListener('SIGINT', onInterrupt);
        process.removeListener('SIGINT', quit);
      }
    });
}
