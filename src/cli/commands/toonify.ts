// `facestyle toonify --photo P [--base F] [--blend B | --style S --layer N] --out DIR [--steps 500]
// [--face largest|N]`. Left out: the default model as base, the style fine-tuned from it at layer
// min(32, resolution), as /toonify does, and the largest face. Ctrl-C cancels at the next step.
import { join } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { initBackend } from '../../model/backend.ts';
import { readCheckpointInfo } from '../../model/checkpoint/info.ts';
import { type FaceChoice, parseFaceChoice, type StyleSwap, toonify } from '../../pipelines/toonify.ts';
import { baseModelFile, defaultStyleModel, modelFile } from '../models.ts';
import { parseNumber } from '../options.ts';
import { createProgress, type Progress } from '../progress.ts';
import { parseDirection } from './blend.ts';

interface ToonifyCliOptions {
  photo: string;
  base?: string;
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

/** /toonify's default swap layer (px), capped at the model's resolution. */
const DEFAULT_LAYER = 32;

async function blendSource(opts: ToonifyCliOptions, baseFile: string): Promise<string | StyleSwap> {
  if (opts.blend && opts.style)
    throw new UserError('give either --blend (a saved blend) or --style with --layer, not both');
  if (opts.blend) {
    if (opts.layer !== undefined)
      throw new UserError('--layer goes with --style: a saved blend has its swap layer built in');
    return modelFile(opts.blend);
  }
  const layer =
    opts.layer === undefined ? undefined : parseNumber('--layer', opts.layer, { integer: true, min: 4 });
  const width = opts.width === undefined ? undefined : parseNumber('--width', opts.width);
  const direction = parseDirection(opts.direction);
  const style = opts.style === undefined ? await defaultStyleModel(baseFile, '--style') : undefined;
  const resolution = (await readCheckpointInfo(baseFile)).config.G.resolution;
  return {
    style: style?.path ?? (await modelFile(opts.style as string)),
    layer: layer ?? Math.min(DEFAULT_LAYER, resolution),
    width,
    direction,
  };
}

export function register(program: Command): void {
  program
    .command('toonify')
    .description('stylise a face photo: project it into the base model and render it with a blend')
    .requiredOption('--photo <file>', 'photo with a face (JPEG, PNG, WebP)')
    .option(
      '--base <file>',
      'base checkpoint the blend was made from, with its discriminator ideally (default: the default model)',
    )
    .option('--blend <file>', 'saved blend checkpoint (facestyle blend)')
    .option(
      '--style <file>',
      'style checkpoint, blended now at --layer (default: the one fine-tuned from the base)',
    )
    .option('--layer <res>', 'with --style: swap resolution (default: 32, or the model resolution if lower)')
    .option('--width <octaves>', 'with --style: soft switch width (0 = hard cut)')
    .option('--direction <dir>', 'with --style: texture | structure', 'texture')
    .requiredOption(
      '--out <dir>',
      'output folder: toonify.png, original.png, reconstruction.png, stylised.png',
    )
    .option('--face <which>', 'with several faces: largest (default), or N (0 = largest)')
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
      // Every option is checked before the photo is read or a model loaded: a typo costs no wait.
      const face: FaceChoice = opts.face === undefined ? 'largest' : parseFaceChoice(opts.face);
      const steps = parseNumber('--steps', opts.steps, { integer: true, min: 1 });
      const numbers = {
        learningRate: parseNumber('--lr', opts.lr, { min: Number.MIN_VALUE }),
        pixelWeight: parseNumber('--pixel-weight', opts.pixelWeight),
        perceptualWeight: parseNumber('--perceptual-weight', opts.perceptualWeight),
        seed: parseNumber('--seed', opts.seed, { integer: true }),
        previewEvery: parseNumber('--preview-every', opts.previewEvery, { integer: true, min: 1 }),
      };
      const baseFile = await baseModelFile(opts.base, '--base');
      const blend = await blendSource(opts, baseFile);
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
          baseCheckpoint: baseFile,
          blend,
          outDir: opts.out,
          face,
          steps,
          ...numbers,
          optimizeNoise: opts.noise,
          wPlus: !opts.w,
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
        if (opts.face === undefined && chosen.count > 1)
          process.stderr.write(
            `the photo shows ${chosen.count} faces: used the largest; pick another with --face N (0 = largest, ${chosen.count - 1} = smallest)\n`,
          );
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
