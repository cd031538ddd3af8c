// The StyleGAN2 training loop of stylegan2-ada-pytorch (training_loop.py + StyleGAN2Loss), for
// fine-tuning a base model on a few hundred images or training a small model from scratch: the
// run (resume, epochs, snapshots, progress). One minibatch's phases are in phases.ts, the
// hyperparameters and their official defaults in hyperparameters.ts.
import { mkdir } from 'node:fs/promises';
import { UserError } from '../../errors.ts';
import { logger } from '../../log.ts';
import type { ModelScore } from '../checkpoint/format.ts';
import { type Checkpoint, disposeCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint/io.ts';
import type { DiscriminatorConfig, GeneratorConfig, ModelConfig } from '../config.ts';
import { Generator } from '../networks/generator.ts';
import { tf } from '../tf.ts';
import { AdaptiveAugment } from './augment.ts';
import { streamItems, type TrainingSet } from './data.ts';
import { resolveHyperparameters, type TrainHyperparameters } from './hyperparameters.ts';
import { MinibatchTrainer, type StartingNetworks } from './phases.ts';
import {
  listSnapshots,
  previewPath,
  type SnapshotFile,
  snapshotPath,
  type TrainingState,
  trainingStateOf,
  writePreview,
} from './snapshot.ts';

export {
  type AugmentMode,
  defaultHyperparameters,
  type TrainHyperparameters,
} from './hyperparameters.ts';

const log = logger('train');

export interface TrainProgress {
  /** Whole epochs completed, and the total. */
  epoch: number;
  epochs: number;
  /** Epochs as a fraction, for progress bars. */
  epochFraction: number;
  step: number;
  kimg: number;
  /** Latest values: G, D, and when they ran, r1 (before gamma/2) and pl (penalty). */
  losses: Record<string, number>;
  augmentP: number;
  /** r_t = E[sign(D(real))] at the last ADA adjustment. */
  rt: number | null;
  imagesPerSecond: number;
  etaSeconds: number;
  /** Set on the event that follows a snapshot. */
  snapshot?: string;
  /** The snapshot's score, when it was scored (see FinetuneOptions.scoreSnapshot). */
  score?: ModelScore;
}

/**
 * Scores G_ema at a snapshot, before the snapshot is written, so the score is stored in its
 * metadata. `secondsPerEpoch` is the training time of one epoch, for callers that bound their cost.
 */
export type SnapshotScorer = (G: Generator, secondsPerEpoch: number) => Promise<ModelScore | null>;

export interface FinetuneOptions {
  /** Run folder: snapshots, previews; a run resumes from the newest snapshot here. */
  outDir: string;
  name: string;
  config: ModelConfig;
  /** Starting networks (a base checkpoint's, or fresh ones); ignored when resuming. */
  networks: StartingNetworks;
  /** The base checkpoint's name or path (absent when training from scratch). */
  parent?: string;
  data: TrainingSet;
  epochs: number;
  snapshotEvery: number;
  /**
   * Further snapshot epochs, on top of every `snapshotEvery`: a ladder like the report's
   * (24, 48, 72, 160, 480) while snapshotEvery keeps resume points in between.
   */
  snapshotEpochs?: readonly number[];
  hyper?: Partial<TrainHyperparameters>;
  seed?: number;
  previewSeeds?: number[];
  /** false: start over even when the folder has snapshots. */
  resume?: boolean;
  onProgress?: (event: TrainProgress) => void;
  /** Quality score of each snapshot (src/pipelines/score); none when absent. */
  scoreSnapshot?: SnapshotScorer;
  /** Stops within one minibatch; the snapshots written so far stay. */
  signal?: AbortSignal;
  /**
   * Threads that compute the minibatch's rounds side by side, on the CPU backends (wasm, cpu:
   * one engine uses one core). Without an explicit batchGpu, the minibatch is split into this
   * many rounds. 1 (the default) on other backends.
   */
  threads?: number;
}

export interface FinetuneResult {
  snapshots: SnapshotFile[];
  state: TrainingState;
  cancelled: boolean;
  resumedFrom: string | null;
  /** Threads that computed the rounds (1: this one alone). */
  threads: number;
}

/** Loads the newest snapshot of the run folder, checking it belongs to this configuration. */
async function loadLatest(
  outDir: string,
  config: ModelConfig,
): Promise<{ ckpt: Checkpoint; state: TrainingState } | null> {
  const snapshots = await listSnapshots(outDir);
  const latest = snapshots.at(-1);
  if (!latest) return null;
  const ckpt = await loadCheckpoint(latest.path);
  const same = JSON.stringify(ckpt.config) === JSON.stringify(config);
  if (!same || !ckpt.G || !ckpt.D || !ckpt.G_ema) {
    throw new UserError(
      `${latest.path} is not a snapshot of this run (${same ? 'G, D or G_ema missing' : 'different model configuration'})`,
      'use a new --out folder, or the same options as the run that wrote it',
    );
  }
  return { ckpt, state: trainingStateOf(ckpt.meta, latest.path) };
}

export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const { config, data } = opts;
  const gCfg = config.G;
  const dCfg = config.D;
  if (!dCfg) throw new UserError('training needs a discriminator: the base checkpoint has no D');
  if (data.resolution !== gCfg.resolution || gCfg.resolution !== dCfg.resolution) {
    throw new UserError(
      `training images are ${data.resolution}x${data.resolution} but the model is ${gCfg.resolution}x${gCfg.resolution}`,
    );
  }
  if (
    !(Number.isInteger(opts.epochs) && opts.epochs > 0) ||
    !(Number.isInteger(opts.snapshotEvery) && opts.snapshotEvery > 0)
  ) {
    throw new UserError('epochs and snapshot-every must be positive integers');
  }
  const beyond = (opts.snapshotEpochs ?? []).filter(
    (e) => !(Number.isInteger(e) && e > 0 && e <= opts.epochs),
  );
  if (beyond.length > 0) {
    throw new UserError(
      `snapshot epochs must be whole epochs from 1 to ${opts.epochs}, got ${beyond.join(', ')}`,
    );
  }
  const threads = trainingThreads(opts.threads ?? 1);
  const itemsPerEpoch = data.itemsPerEpoch(opts.hyper?.mirror ?? true);
  let hyper = resolveHyperparameters(gCfg.resolution, itemsPerEpoch, dCfg, opts.hyper);
  if (threads > 1 && opts.hyper?.batchGpu === undefined) {
    // The minibatch as resolved (given, or the default for this resolution and set), split.
    const batchGpu = roundSize(hyper.batchSize, threads, dCfg.mbstdGroupSize);
    if (batchGpu !== undefined) hyper = { ...hyper, batchGpu };
  }

  await mkdir(opts.outDir, { recursive: true });
  const resumed = opts.resume === false ? null : await loadLatest(opts.outDir, config);
  const run = new TrainingRun(opts, hyper, gCfg, dCfg, resumed);
  try {
    const running = await run.startThreads(threads);
    if (threads > 1) {
      log.info('training threads', { asked: threads, running, rounds: hyper.batchSize / hyper.batchGpu });
    }
    return { ...(await run.train()), threads: running };
  } finally {
    await run.dispose();
    // The run's variables copied the snapshot's tensors' data references; the tensors themselves go.
    if (resumed) disposeCheckpoint(resumed.ckpt);
  }
}

/** Threads worth starting: more than one only on the CPU backends, whose engines use one core. */
function trainingThreads(asked: number): number {
  if (!(Number.isInteger(asked) && asked > 0))
    throw new UserError(`threads must be a positive integer, got ${asked}`);
  const backend = tf.getBackend();
  if (asked > 1 && backend !== 'wasm' && backend !== 'cpu') {
    log.info('training on one thread: round threads are for the CPU backends', { backend, asked });
    return 1;
  }
  return asked;
}

/**
 * Images per round when a minibatch of `batchSize` is split into `threads` rounds of whole
 * minibatch-std groups; undefined when it does not split so (it stays one round, one thread).
 */
function roundSize(batchSize: number, threads: number, mbstdGroupSize: number): number | undefined {
  const perRound = batchSize / threads;
  // The minibatch-std groups stay the size one round would give them.
  const group = Math.min(mbstdGroupSize, batchSize);
  return Number.isInteger(perRound) && perRound % group === 0 ? perRound : undefined;
}

class TrainingRun {
  private readonly trainer: MinibatchTrainer;
  private readonly ada: AdaptiveAugment | null;
  private readonly state: TrainingState;
  private readonly itemsPerEpoch: number;
  private readonly totalImages: number;
  private readonly resumedFrom: string | null;
  private lossSums = new Map<string, { sum: number; count: number }>();
  private lastLosses: Record<string, number> = {};
  /** Training time and images since the last snapshot: what an epoch costs, for the scorer's budget. */
  private trainingSeconds = 0;
  private imagesAtLastSnapshot = 0;

  constructor(
    private readonly opts: FinetuneOptions,
    private readonly hyper: TrainHyperparameters,
    private readonly gCfg: GeneratorConfig,
    private readonly dCfg: DiscriminatorConfig,
    resumed: { ckpt: Checkpoint; state: TrainingState } | null,
  ) {
    const source = resumed
      ? { G: resumed.ckpt.G!, D: resumed.ckpt.D!, G_ema: resumed.ckpt.G_ema! }
      : opts.networks;
    this.ada =
      hyper.augment === 'ada'
        ? new AdaptiveAugment({ target: hyper.adaTarget, kimg: hyper.adaKimg, interval: hyper.adaInterval })
        : null;
    this.itemsPerEpoch = opts.data.itemsPerEpoch(hyper.mirror);
    this.totalImages = opts.epochs * this.itemsPerEpoch;
    this.state = resumed
      ? { ...resumed.state }
      : { imagesSeen: 0, step: 0, epoch: 0, plMean: 0, ada: null, seed: opts.seed ?? 0 };
    if (this.ada && this.state.ada) this.ada.restore(this.state.ada);
    this.resumedFrom = resumed ? resumed.ckpt.path : null;
    this.trainer = new MinibatchTrainer(gCfg, dCfg, source, hyper, opts.data, this.state, this.ada);
  }

  private augmentP(): number {
    return this.trainer.augmentP();
  }

  private record(name: string, value: number): void {
    this.lastLosses[name] = value;
    const s = this.lossSums.get(name) ?? { sum: 0, count: 0 };
    s.sum += value;
    s.count++;
    this.lossSums.set(name, s);
  }

  private async snapshot(epoch: number): Promise<{ path: string; score?: ModelScore }> {
    const images = this.state.imagesSeen - this.imagesAtLastSnapshot;
    const secondsPerEpoch = (this.trainingSeconds * this.itemsPerEpoch) / Math.max(1, images);
    this.trainingSeconds = 0;
    this.imagesAtLastSnapshot = this.state.imagesSeen;
    const score =
      (await this.opts.scoreSnapshot?.(new Generator(this.gCfg, this.trainer.emaParams), secondsPerEpoch)) ??
      undefined;
    const losses: Record<string, number> = {};
    for (const [name, { sum, count }] of this.lossSums) losses[name] = sum / count;
    this.lossSums = new Map();
    this.state.ada = this.ada?.state() ?? null;
    const path = snapshotPath(this.opts.outDir, epoch);
    await saveCheckpoint(path, {
      config: { G: this.gCfg, D: this.dCfg },
      meta: {
        // One name for every snapshot of a run (the epoch is its own field): the registry groups
        // snapshots by name, which is how `/blend epochs:N` finds epoch N of a fine-tune.
        name: this.opts.name,
        kind: 'finetune',
        parent: this.opts.parent,
        datasetId: this.opts.data.id,
        epoch,
        kimg: this.state.imagesSeen / 1000,
        augmentP: this.augmentP(),
        losses,
        ...(score ? { scores: [score] } : {}),
        createdAt: new Date().toISOString(),
        extra: { training: { ...this.state }, hyperparameters: { ...this.hyper } },
      },
      G: this.trainer.gParams,
      D: this.trainer.dParams,
      G_ema: this.trainer.emaParams,
    });
    const seeds = this.opts.previewSeeds ?? Array.from({ length: 16 }, (_, i) => i);
    if (seeds.length > 0) {
      await writePreview(
        previewPath(this.opts.outDir, epoch),
        this.gCfg,
        this.trainer.emaParams,
        seeds,
        `${this.opts.name} epoch ${epoch}`,
      );
    }
    log.info('snapshot', {
      path,
      epoch,
      kimg: this.state.imagesSeen / 1000,
      augmentP: this.augmentP(),
      losses,
      ...(score ? { score: `${score.metric} ${score.kid}` } : {}),
    });
    return { path, score };
  }

  async train(): Promise<Omit<FinetuneResult, 'threads'>> {
    const { batchSize } = this.hyper;
    const { snapshotEvery, epochs, signal, onProgress } = this.opts;
    const ladder = this.opts.snapshotEpochs ?? [];
    const started = performance.now();
    const startImages = this.state.imagesSeen;
    this.imagesAtLastSnapshot = startImages;
    let cancelled = false;
    while (this.state.imagesSeen < this.totalImages) {
      if (signal?.aborted) {
        cancelled = true;
        break;
      }
      const items = streamItems(this.itemsPerEpoch, this.state.seed, this.state.imagesSeen, batchSize);
      const stepStarted = performance.now();
      for (const [name, value] of Object.entries(await this.trainer.step(items))) this.record(name, value);
      this.trainingSeconds += (performance.now() - stepStarted) / 1000;
      // On wasm/cpu a step resolves through microtasks only: yield to the event loop so progress
      // writes, IPC to the bot and cancellation signals get through while training runs.
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.state.step++;
      this.state.imagesSeen += batchSize;
      const before = this.state.epoch;
      this.state.epoch = Math.min(epochs, Math.floor(this.state.imagesSeen / this.itemsPerEpoch));
      const finished = this.state.imagesSeen >= this.totalImages;
      let snapshot: { path: string; score?: ModelScore } | undefined;
      const epoch = this.state.epoch;
      if (
        finished ||
        Math.floor(epoch / snapshotEvery) > Math.floor(before / snapshotEvery) ||
        ladder.some((e) => before < e && e <= epoch)
      ) {
        snapshot = await this.snapshot(this.state.epoch);
      }
      const elapsed = (performance.now() - started) / 1000;
      const rate = (this.state.imagesSeen - startImages) / Math.max(elapsed, 1e-9);
      onProgress?.({
        epoch: this.state.epoch,
        epochs,
        epochFraction: this.state.imagesSeen / this.itemsPerEpoch,
        step: this.state.step,
        kimg: this.state.imagesSeen / 1000,
        losses: { ...this.lastLosses },
        augmentP: this.augmentP(),
        rt: this.ada?.lastRt ?? null,
        imagesPerSecond: rate,
        etaSeconds: Math.max(0, this.totalImages - this.state.imagesSeen) / rate,
        ...(snapshot ? { snapshot: snapshot.path } : {}),
        ...(snapshot?.score ? { score: snapshot.score } : {}),
      });
    }
    return {
      snapshots: await listSnapshots(this.opts.outDir),
      state: { ...this.state, ada: this.ada?.state() ?? null },
      cancelled,
      resumedFrom: this.resumedFrom,
    };
  }

  startThreads(threads: number): Promise<number> {
    return this.trainer.startThreads(threads);
  }

  async dispose(): Promise<void> {
    await this.trainer.dispose();
  }
}
