// `facestyle finetune --base F --data DIR --epochs 480 --snapshot-every 24 --out runs/NAME`, and
// training from scratch when no --base is given (--resolution and sizes then say what to build).
// Progress goes to a bar on stderr, to runs/NAME/progress.jsonl (one JSON object per minibatch,
// for the bot) and to runs/NAME/losses.png and scores.png (KID by epoch, docs/score.md), redrawn at
// every snapshot; the end names the best-scored epoch. Ctrl-C stops after the
// current minibatch and keeps the snapshots; running the same command again resumes.
import { appendFileSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { IMAGES_DIR } from '../../datasets/index.ts';
import { UserError } from '../../errors.ts';
import { initBackend } from '../../model/backend.ts';
import { readCheckpointInfo } from '../../model/checkpoint/info.ts';
import { disposeCheckpoint, loadCheckpoint } from '../../model/checkpoint/io.ts';
import { defaultDiscriminatorConfig, defaultGeneratorConfig, type ModelConfig } from '../../model/config.ts';
import { initParams } from '../../model/init.ts';
import { Discriminator } from '../../model/networks/discriminator.ts';
import { Generator } from '../../model/networks/generator.ts';
import type { ParamStore } from '../../model/params.ts';
import { parseSeeds } from '../../model/seeds.ts';
import { AUGMENT_PRESETS, type AugmentPreset } from '../../model/train/augment.ts';
import { TrainingSet } from '../../model/train/data.ts';
import { type CurvePoint, writeLossCurve } from '../../model/train/loss-curve.ts';
import {
  type AugmentMode,
  defaultHyperparameters,
  finetune,
  type TrainHyperparameters,
  type TrainProgress,
} from '../../model/train/trainer.ts';
import { bestScored, formatScore, readSnapshotScores } from '../../pipelines/score/best.ts';
import { DEFAULT_SNAPSHOT_SCORING, TrainingSetScorer } from '../../pipelines/score/training.ts';
import { plural } from '../../text.ts';
import {
  type ArchitectureFlags,
  addArchitectureOptions,
  parseArchitecture,
  parseNumber,
} from '../options.ts';
import { createProgress } from '../progress.ts';

interface FinetuneCliOptions extends ArchitectureFlags {
  base?: string;
  data: string;
  epochs: string;
  snapshotEvery?: string;
  snapshotEpochs?: string;
  out: string;
  name?: string;
  batch?: string;
  batchGpu?: string;
  gamma?: string;
  glr?: string;
  dlr?: string;
  plWeight?: string;
  freezed: string;
  mirror: boolean;
  aug: string;
  augpipe: string;
  target: string;
  adaKimg: string;
  seed: string;
  previewSeeds: string;
  scoreSamples: string;
  scoreBudget: string;
  restart?: boolean;
  resolution?: string;
  mbstd: string;
  threads: string;
}

function parseAugment(value: string): AugmentMode {
  if (value === 'ada') return 'ada';
  if (value === 'noaug') return 'off';
  const fixed = /^fixed:(.+)$/.exec(value);
  if (fixed) {
    const p = parseNumber('--aug fixed:P', fixed[1]);
    if (p <= 1) return { fixedP: p };
  }
  throw new UserError(`--aug must be ada, noaug or fixed:P with P in [0, 1], got "${value}"`);
}

const ARCHIVE = /\.(zip|tar|tar\.gz|tgz)$/i;

/**
 * The folder of training images --data names: a dataset built by `facestyle dataset build` (its
 * images/ folder) or a plain folder of images. An archive is refused with the command that builds
 * a dataset from it (alignment, dedup and a contact sheet are worth looking at before training).
 */
export async function trainingImages(
  data: string,
  resolution: number,
): Promise<{ dir: string; built: boolean }> {
  const info = await stat(data).catch(() => null);
  if (!info)
    throw new UserError(
      `--data ${data} does not exist`,
      'give a folder of training images, or a dataset built by `facestyle dataset build`',
    );
  if (info.isFile()) {
    const name = basename(data).replace(ARCHIVE, '');
    if (ARCHIVE.test(data))
      throw new UserError(
        `--data ${data} is an archive: fine-tuning reads a folder of images`,
        `build the dataset first: npx facestyle dataset build --in ${data} --out datasets/${name} --res ${resolution}, then --data datasets/${name}`,
      );
    throw new UserError(
      `--data ${data} is a file: give a folder of images, or a dataset built by \`facestyle dataset build\``,
    );
  }
  const built = join(data, IMAGES_DIR);
  if ((await stat(built).catch(() => null))?.isDirectory()) return { dir: built, built: true };
  return { dir: data, built: false };
}

/** Images looked at to tell aligned faces from raw photos. */
const ALIGNMENT_SAMPLE = 16;

/**
 * A warning when a plain folder holds photos rather than aligned face crops (not square, or far
 * larger than the model): training then learns whole photos, centre-cropped and shrunk. Null when
 * the sample looks like aligned faces.
 */
export async function alignmentWarning(dir: string, resolution: number): Promise<string | null> {
  const { default: sharp } = await import('sharp');
  const names = (await readdir(dir)).filter((n) => /\.(png|jpe?g|webp)$/i.test(n)).sort();
  const raw: string[] = [];
  for (const name of names.slice(0, ALIGNMENT_SAMPLE)) {
    const meta = await sharp(join(dir, name))
      .metadata()
      .catch(() => null);
    if (!meta?.width || !meta.height) continue;
    const square = Math.abs(meta.width - meta.height) <= 0.02 * Math.max(meta.width, meta.height);
    if (!square || Math.max(meta.width, meta.height) > 4 * Math.max(resolution, 256))
      raw.push(`${name} ${meta.width}x${meta.height}`);
  }
  if (raw.length === 0) return null;
  const folder = basename(dir);
  return (
    `warning: ${dir} holds photos, not aligned faces (${raw.length} of the first ${Math.min(names.length, ALIGNMENT_SAMPLE)}: ${raw.slice(0, 3).join(', ')}${raw.length > 3 ? ', ...' : ''}); ` +
    `each is centre-cropped and shrunk to ${resolution}x${resolution}, so the model learns whole photos. ` +
    `For faces, align them first: npx facestyle dataset build --in ${dir} --out datasets/${folder}-aligned --res ${resolution}`
  );
}

function scratchConfig(opts: FinetuneCliOptions): ModelConfig {
  if (!opts.resolution)
    throw new UserError('give --base to fine-tune, or --resolution to train from scratch');
  const { channelBase, channelMax, mappingLayers, zDim, wDim } = parseArchitecture(opts);
  const common = {
    resolution: parseNumber('--resolution', opts.resolution, { integer: true, min: 8 }),
    channelBase,
    channelMax,
  };
  try {
    return {
      G: defaultGeneratorConfig({ ...common, mappingLayers, zDim, wDim }),
      D: defaultDiscriminatorConfig({
        ...common,
        mbstdGroupSize: parseNumber('--mbstd', opts.mbstd, { integer: true, min: 1 }),
      }),
    };
  } catch (err) {
    if (err instanceof RangeError) throw new UserError(err.message);
    throw err;
  }
}

function hyperparameters(opts: FinetuneCliOptions): Partial<TrainHyperparameters> {
  const h: Partial<TrainHyperparameters> = {
    freezeD: parseNumber('--freezed', opts.freezed, { integer: true }),
    mirror: opts.mirror,
    augment: parseAugment(opts.aug),
    adaTarget: parseNumber('--target', opts.target),
    adaKimg: parseNumber('--ada-kimg', opts.adaKimg, { min: 1e-6 }),
  };
  if (!(opts.augpipe in AUGMENT_PRESETS)) {
    throw new UserError(
      `--augpipe must be one of ${Object.keys(AUGMENT_PRESETS).join(', ')}, got "${opts.augpipe}"`,
    );
  }
  h.augmentPreset = opts.augpipe as AugmentPreset;
  if (opts.batch) h.batchSize = parseNumber('--batch', opts.batch, { integer: true, min: 1 });
  if (opts.batchGpu) h.batchGpu = parseNumber('--batch-gpu', opts.batchGpu, { integer: true, min: 1 });
  if (opts.gamma) h.r1Gamma = parseNumber('--gamma', opts.gamma);
  if (opts.glr) h.glr = parseNumber('--glr', opts.glr, { min: 1e-12 });
  if (opts.dlr) h.dlr = parseNumber('--dlr', opts.dlr, { min: 1e-12 });
  if (opts.plWeight) h.plWeight = parseNumber('--pl-weight', opts.plWeight);
  return h;
}

/**
 * The run's curve from progress.jsonl, every session of it: where a resumed session repeated
 * steps after the snapshot it resumed from, its entries replace the killed session's.
 */
export async function readCurve(progressLog: string): Promise<CurvePoint[]> {
  const byStep = new Map<number, CurvePoint>();
  const text = await readFile(progressLog, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as TrainProgress;
      byStep.set(e.step, { kimg: e.kimg, values: { ...e.losses, 'augment p': e.augmentP } });
    } catch {
      // a line cut short by a crash
    }
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([, point]) => point);
}

/** KID by epoch from progress.jsonl: one point per scored snapshot, x = epoch. */
export async function readScoreCurve(
  progressLog: string,
): Promise<{ metric?: string; points: CurvePoint[] }> {
  const byEpoch = new Map<number, CurvePoint>();
  let metric: string | undefined;
  const text = await readFile(progressLog, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (!line.includes('"score"')) continue;
    try {
      const e = JSON.parse(line) as TrainProgress;
      if (!e.score) continue;
      metric = e.score.metric;
      byEpoch.set(e.epoch, { kimg: e.epoch, values: { [e.score.metric]: e.score.kid } });
    } catch {
      // a line cut short by a crash
    }
  }
  return { metric, points: [...byEpoch.entries()].sort((a, b) => a[0] - b[0]).map(([, point]) => point) };
}

/**
 * Images the run will train on: the trainer takes whole minibatches until it has seen `epochs`
 * epochs, so the last one can run past the epoch boundary.
 */
export function plannedImages(epochs: number, itemsPerEpoch: number, batchSize: number): number {
  return Math.ceil((epochs * itemsPerEpoch) / batchSize) * batchSize;
}

function round(v: number, digits = 3): number {
  return Number(v.toFixed(digits));
}

export function register(program: Command): void {
  const command = program
    .command('finetune')
    .description(
      'fine-tune a StyleGAN2 model on a folder of images (or train one from scratch), with snapshots',
    )
    .option('--base <file>', 'checkpoint to start from (needs G and D); omit to train from scratch')
    .requiredOption(
      '--data <dir>',
      'folder of training images, or a dataset built by `facestyle dataset build`',
    )
    .requiredOption('--epochs <n>', 'passes over the images (x-flips included)')
    .option('--snapshot-every <n>', 'epochs between snapshots (default: epochs / 20)')
    .option(
      '--snapshot-epochs <list>',
      'further snapshots at these epochs, e.g. 24,48,72,160,480 (a ladder; --snapshot-every still applies)',
    )
    .requiredOption('--out <dir>', 'run folder: snapshots, previews, progress.jsonl, losses.png')
    .option('--name <name>', 'run name recorded in the snapshots (default: the --out folder name)')
    .option('--batch <n>', 'minibatch size (default: min(4096 / resolution, 32))')
    .option('--batch-gpu <n>', 'images per round; the minibatch accumulates over rounds')
    .option('--gamma <value>', 'R1 weight (default: 0.0002 * resolution^2 / batch); 0 disables')
    .option('--glr <value>', 'generator learning rate (default 0.0025)')
    .option('--dlr <value>', 'discriminator learning rate (default 0.0025)')
    .option('--pl-weight <value>', 'path-length regularisation weight (default 2); 0 disables')
    .option('--freezed <k>', 'freeze the first k discriminator blocks (FreezeD)', '0')
    .option('--no-mirror', 'do not add x-flipped copies of the images')
    .option('--aug <mode>', 'ada | noaug | fixed:P', 'ada')
    .option('--augpipe <name>', `augmentations: ${Object.keys(AUGMENT_PRESETS).join(' | ')}`, 'bgc')
    .option('--target <value>', 'ADA target for E[sign(D(real))]', '0.6')
    .option('--ada-kimg <value>', 'ADA speed: thousands of images for p to move from 0 to 1', '500')
    .option('--seed <n>', 'random seed of the run', '0')
    .option('--preview-seeds <list>', 'seeds of the preview grid written with each snapshot', '0-15')
    .option(
      '--score-samples <n>',
      'score each snapshot against the training images with up to n images a side (KID, see docs/score.md); 0: off',
      String(DEFAULT_SNAPSHOT_SCORING.samples),
    )
    .option(
      '--score-budget <fraction>',
      'scoring one snapshot may take at most this fraction of an epoch (fewer images when needed)',
      String(DEFAULT_SNAPSHOT_SCORING.budget),
    )
    .option('--restart', 'ignore snapshots already in --out and start over')
    .option('--resolution <px>', 'from scratch: image size')
    .option('--mbstd <n>', 'from scratch: minibatch-std group size', '4')
    .option(
      '--threads <n|auto>',
      'wasm/cpu: threads computing the minibatch in rounds side by side (auto: one per core)',
      'auto',
    );
  addArchitectureOptions(command, { mappingLayers: 2 }, 'from scratch: ').action(
    async (opts: FinetuneCliOptions) => {
      await initBackend(program.opts().backend);
      const epochs = parseNumber('--epochs', opts.epochs, { integer: true, min: 1 });
      const snapshotEvery = opts.snapshotEvery
        ? parseNumber('--snapshot-every', opts.snapshotEvery, { integer: true, min: 1 })
        : Math.max(1, Math.round(epochs / 20));
      const snapshotEpochs = (opts.snapshotEpochs ?? '')
        .split(',')
        .filter((e) => e.trim() !== '')
        .map((e) => parseNumber('--snapshot-epochs', e, { integer: true, min: 1 }));
      const hyper = hyperparameters(opts);
      const seed = parseNumber('--seed', opts.seed, { integer: true });
      const previewSeeds = parseSeeds(opts.previewSeeds, 64);
      const scoreSamples = parseNumber('--score-samples', opts.scoreSamples, { integer: true });
      const scoreBudget = parseNumber('--score-budget', opts.scoreBudget, { min: 1e-6 });
      const threads =
        opts.threads === 'auto'
          ? availableParallelism()
          : parseNumber('--threads', opts.threads, { integer: true, min: 1 });
      // The data is checked before any model is loaded: a wrong --data costs no wait.
      const resolution = opts.base
        ? (await readCheckpointInfo(opts.base)).config.G.resolution
        : scratchConfig(opts).G.resolution;
      const images = await trainingImages(opts.data, resolution);
      if (!images.built) {
        const warning = await alignmentWarning(images.dir, resolution);
        if (warning) process.stderr.write(`${warning}\n`);
      }

      let config: ModelConfig;
      let networks: { G: ParamStore; D: ParamStore; G_ema?: ParamStore };
      let parent: string | undefined;
      let release = () => {};
      if (opts.base) {
        const ckpt = await loadCheckpoint(opts.base);
        if (!ckpt.G || !ckpt.D || !ckpt.config.D) {
          disposeCheckpoint(ckpt);
          throw new UserError(
            `${opts.base} has no ${ckpt.G ? 'discriminator (D)' : 'generator G'}: it cannot be fine-tuned`,
            'use a full training checkpoint (G, D and G_ema), such as an official network-snapshot converted with its D',
          );
        }
        config = ckpt.config;
        networks = { G: ckpt.G, D: ckpt.D, G_ema: ckpt.G_ema };
        parent = ckpt.meta.name || basename(opts.base);
        release = () => disposeCheckpoint(ckpt);
      } else {
        config = scratchConfig(opts);
        networks = {
          G: initParams(Generator.specs(config.G), seed),
          D: initParams(Discriminator.specs(config.D!), seed + 1),
        };
      }

      const data = await TrainingSet.fromFolder(images.dir, config.G.resolution);
      const outDir = resolve(opts.out);
      const itemsPerEpoch = data.itemsPerEpoch(hyper.mirror ?? true);
      const total = plannedImages(
        epochs,
        itemsPerEpoch,
        hyper.batchSize ??
          defaultHyperparameters(config.G.resolution, itemsPerEpoch, config.D?.mbstdGroupSize).batchSize,
      );
      process.stderr.write(
        `training ${config.G.resolution}x${config.G.resolution} on ${data.count} images (${itemsPerEpoch} per epoch), ` +
          `${plural(epochs, 'epoch')} = ${round(total / 1000)} kimg, snapshots every ${plural(snapshotEvery, 'epoch')}` +
          `${snapshotEpochs.length > 0 ? ` and at epochs ${snapshotEpochs.join(', ')}` : ''} in ${outDir}\n`,
      );
      const bar = createProgress('training', total);
      const controller = new AbortController();
      const onSigint = () => {
        process.stderr.write(
          '\nstopping after this minibatch (the snapshots so far are kept; run again to resume)\n',
        );
        controller.abort();
      };
      process.once('SIGINT', onSigint);
      const progressLog = join(outDir, 'progress.jsonl');
      if (opts.restart) await rm(progressLog, { force: true });
      const onProgress = async (e: TrainProgress) => {
        // The bar shows the one ETA; the trainer's etaSeconds goes to progress.jsonl for the bot.
        bar.update(Math.min(total, Math.round(e.kimg * 1000)), {
          epoch: `${e.epoch}/${e.epochs}`,
          kimg: round(e.kimg),
          G: round(e.losses.G ?? Number.NaN),
          D: round(e.losses.D ?? Number.NaN),
          p: round(e.augmentP),
        });
        // Synchronous on purpose: on wasm the loop yields to the event loop once per minibatch, and
        // an async append (open, write, close) took three of those turns, so the log fell ever
        // further behind training (a third of the steps an hour in) with wrong timestamps.
        appendFileSync(progressLog, `${JSON.stringify({ t: new Date().toISOString(), ...e })}\n`);
        if (e.snapshot) {
          await writeLossCurve(
            join(outDir, 'losses.png'),
            await readCurve(progressLog),
            ['G', 'D', 'r1', 'pl', 'augment p'],
            opts.name ?? basename(outDir),
          );
          const scores = await readScoreCurve(progressLog);
          if (scores.metric) {
            await writeLossCurve(
              join(outDir, 'scores.png'),
              scores.points,
              [scores.metric],
              `${opts.name ?? basename(outDir)}: ${scores.metric} against the training images (lower is better)`,
              'epoch',
            );
          }
        }
      };
      // Progress handlers run between minibatches; their file writes are awaited in order.
      let pending: Promise<void> = Promise.resolve();
      const scorer = new TrainingSetScorer(data, { samples: scoreSamples, budget: scoreBudget, seed });
      let unscoredReason: string | undefined;
      try {
        const result = await finetune({
          outDir,
          name: opts.name ?? basename(outDir),
          config,
          networks,
          parent,
          data,
          epochs,
          snapshotEvery,
          snapshotEpochs,
          hyper,
          seed,
          previewSeeds,
          resume: !opts.restart,
          signal: controller.signal,
          threads,
          onProgress: (e) => {
            pending = pending.then(() => onProgress(e));
          },
          ...(scoreSamples > 0
            ? {
                scoreSnapshot: async (G, secondsPerEpoch) => {
                  const outcome = await scorer.score(G, secondsPerEpoch);
                  unscoredReason = outcome.skipped;
                  return outcome.score;
                },
              }
            : {}),
        });
        await pending;
        bar.stop();
        const last = result.snapshots.at(-1);
        process.stdout.write(
          `${result.cancelled ? 'stopped' : 'finished'} at epoch ${result.state.epoch}/${epochs} ` +
            `(${round(result.state.imagesSeen / 1000)} kimg)${result.resumedFrom ? `, resumed from ${result.resumedFrom}` : ''}` +
            `${result.threads > 1 ? ` on ${result.threads} threads` : ''}; ` +
            `${last ? `latest snapshot ${last.path}` : 'no snapshot yet'}\n`,
        );
        const scored = await readSnapshotScores(result.snapshots);
        const best = bestScored(scored);
        process.stdout.write(
          best?.score
            ? `best epoch ${best.epoch} by ${formatScore(best.score)} against the training images ` +
                `(${scored.filter((s) => s.score).length} of ${scored.length} snapshots scored; scores by epoch in ${join(outDir, 'scores.png')})\n`
            : `no snapshot was scored${scoreSamples > 0 && unscoredReason ? `: ${unscoredReason}` : scoreSamples > 0 ? '' : ' (--score-samples 0)'}\n`,
        );
        // 130, as a shell reports Ctrl-C: a script that chains runs must not go on from an unfinished one.
        if (result.cancelled) process.exitCode = 130;
      } finally {
        process.off('SIGINT', onSigint);
        bar.stop();
        release();
      }
    },
  );
}
