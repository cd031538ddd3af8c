// The StyleGAN2 training loop of stylegan2-ada-pytorch (training_loop.py + StyleGAN2Loss), for
// fine-tuning a base model on a few hundred images or training a small model from scratch.
//
// Per minibatch, in the official phase order: G main (non-saturating loss through D(augment)),
// G path-length regularisation every plInterval steps, D main (logistic loss on augmented fakes
// and reals), D R1 every r1Interval steps; each phase takes its own Adam step with the lazy
// regularisation correction. Then the generator EMA, the w_avg tracker and the ADA controller.
// Minibatches larger than batchGpu are split into rounds whose gradients are averaged.
import { mkdir } from 'node:fs/promises';
import { UserError } from '../../errors.ts';
import { logger } from '../../log.ts';
import { type Checkpoint, disposeCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint/io.ts';
import type { DiscriminatorConfig, GeneratorConfig, ModelConfig } from '../config.ts';
import { Discriminator } from '../networks/discriminator.ts';
import { Generator, mixStyles } from '../networks/generator.ts';
import { releaseDerivedWeights } from '../ops/conv.ts';
import { trainingConvOps } from '../ops/grad/install.ts';
import type { ParamStore } from '../params.ts';
import { NumpyRandomState } from '../seeds.ts';
import { tf } from '../tf.ts';
import { Adam, STYLEGAN2_ADAM } from './adam.ts';
import {
  AdaptiveAugment,
  AUGMENT_PRESETS,
  type AugmentPreset,
  applyAugment,
  sampleAugment,
} from './augment.ts';
import { streamItems, type TrainingSet } from './data.ts';
import {
  autoR1Gamma,
  discriminatorFakeLoss,
  discriminatorRealLoss,
  emaBeta,
  generatorLoss,
  lazyRegularizationAdam,
  pathLengthPenalty,
  r1Penalty,
} from './loss.ts';
import {
  listSnapshots,
  previewPath,
  type SnapshotFile,
  snapshotPath,
  type TrainingState,
  trainingStateOf,
  writePreview,
} from './snapshot.ts';

const log = logger('train');

/** 'ada': p adapts; a number: fixed p; 'off': no augmentation. */
export type AugmentMode = 'ada' | 'off' | { fixedP: number };

export interface TrainHyperparameters {
  /** Images per minibatch (official --batch). */
  batchSize: number;
  /** Images per forward/backward round; the minibatch is accumulated over batchSize / batchGpu rounds. */
  batchGpu: number;
  glr: number;
  dlr: number;
  /** R1 weight; 0 disables R1. */
  r1Gamma: number;
  r1Interval: number;
  /** Path-length weight; 0 disables it. */
  plWeight: number;
  plInterval: number;
  plBatchShrink: number;
  plDecay: number;
  styleMixing: number;
  /** G EMA half-life in thousands of images. */
  emaKimg: number;
  /** EMA half-life at most this fraction of the images seen (null: no rampup). */
  emaRampup: number | null;
  /** Freeze-D: the first (highest-resolution) k discriminator blocks are not trained. */
  freezeD: number;
  /** Train on x-flipped copies too (an epoch then covers both). */
  mirror: boolean;
  augment: AugmentMode;
  augmentPreset: AugmentPreset;
  adaTarget: number;
  adaKimg: number;
  adaInterval: number;
}

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
}

export interface FinetuneOptions {
  /** Run folder: snapshots, previews; a run resumes from the newest snapshot here. */
  outDir: string;
  name: string;
  config: ModelConfig;
  /** Starting networks (a base checkpoint's, or fresh ones); ignored when resuming. */
  networks: { G: ParamStore; D: ParamStore; G_ema?: ParamStore };
  /** The base checkpoint's name or path (absent when training from scratch). */
  parent?: string;
  data: TrainingSet;
  epochs: number;
  snapshotEvery: number;
  hyper?: Partial<TrainHyperparameters>;
  seed?: number;
  previewSeeds?: number[];
  /** false: start over even when the folder has snapshots. */
  resume?: boolean;
  onProgress?: (event: TrainProgress) => void;
  /** Stops within one minibatch; the snapshots written so far stay. */
  signal?: AbortSignal;
}

export interface FinetuneResult {
  snapshots: SnapshotFile[];
  state: TrainingState;
  cancelled: boolean;
  resumedFrom: string | null;
}

/** The official `auto` choices where the caller leaves them open. */
export function defaultHyperparameters(
  resolution: number,
  itemsPerEpoch: number,
  mbstdGroupSize = 4,
): TrainHyperparameters {
  // A whole number of minibatch-std groups, and no larger than an epoch.
  let batchSize = Math.max(1, Math.min(Math.floor(4096 / resolution), 32, itemsPerEpoch));
  if (batchSize >= mbstdGroupSize) batchSize -= batchSize % mbstdGroupSize;
  return {
    batchSize,
    batchGpu: batchSize,
    glr: 0.0025,
    dlr: 0.0025,
    r1Gamma: autoR1Gamma(resolution, batchSize),
    r1Interval: 16,
    plWeight: 2,
    plInterval: 4,
    plBatchShrink: 2,
    plDecay: 0.01,
    styleMixing: 0.9,
    emaKimg: (batchSize * 10) / 32,
    emaRampup: 0.05,
    freezeD: 0,
    mirror: true,
    augment: 'ada',
    augmentPreset: 'bgc',
    adaTarget: 0.6,
    adaKimg: 500,
    adaInterval: 4,
  };
}

function checkHyperparameters(h: TrainHyperparameters, D: DiscriminatorConfig): void {
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  const problems: string[] = [];
  if (!positiveInt(h.batchSize) || !positiveInt(h.batchGpu) || h.batchSize % h.batchGpu !== 0)
    problems.push(`batch ${h.batchSize} must be a positive multiple of batch-gpu ${h.batchGpu}`);
  const group = Math.min(D.mbstdGroupSize, h.batchGpu);
  if (h.batchGpu % group !== 0)
    problems.push(`batch-gpu ${h.batchGpu} must be a multiple of the minibatch-std group ${group}`);
  if (!(h.glr > 0 && h.dlr > 0)) problems.push('learning rates must be > 0');
  if (!(h.r1Gamma >= 0 && h.plWeight >= 0)) problems.push('gamma and pl-weight must be >= 0');
  if (!positiveInt(h.r1Interval) || !positiveInt(h.plInterval) || !positiveInt(h.plBatchShrink))
    problems.push('regularisation intervals and pl batch shrink must be positive integers');
  if (!(h.styleMixing >= 0 && h.styleMixing <= 1)) problems.push('style mixing must be in [0, 1]');
  if (!(h.emaKimg >= 0)) problems.push('ema-kimg must be >= 0');
  if (!(Number.isInteger(h.freezeD) && h.freezeD >= 0)) problems.push('freezed must be an integer >= 0');
  if (typeof h.augment === 'object' && !(h.augment.fixedP >= 0 && h.augment.fixedP <= 1))
    problems.push('a fixed augment p must be in [0, 1]');
  if (problems.length) throw new UserError(`bad training options: ${problems.join('; ')}`);
}

/** Integer seed for tfjs's seeded random ops, unique per (run seed, step, purpose). */
function derivedSeed(seed: number, step: number, purpose: number): number {
  return (((seed * 2_654_435_761) ^ (step * 40_503) ^ (purpose * 97_531)) >>> 0) % 2 ** 31;
}

const PURPOSE = {
  gZ: 1,
  gMix: 2,
  plZ: 3,
  plMix: 4,
  plNoise: 5,
  dZ: 6,
  dMix: 7,
  augment: 8,
  mixCoin: 9,
} as const;

/** A network's parameters as variables: trainable ones registered for gradients, buffers not. */
function asVariables(params: ParamStore, buffers: Set<string>): Map<string, tf.Variable> {
  return new Map([...params].map(([name, t]) => [name, tf.variable(t, !buffers.has(name))]));
}

function bufferNames(specs: Array<{ name: string; buffer?: boolean }>): Set<string> {
  return new Set(specs.filter((s) => s.buffer).map((s) => s.name));
}

/**
 * Gradients of a scalar loss averaged over `rounds`, keyed by parameter name, and the mean loss.
 * `loss(r)` runs inside the gradient scope; tensors it must hand out it keeps itself.
 */
function averagedGradients(
  rounds: number,
  trainable: Map<string, tf.Variable>,
  loss: (round: number) => tf.Scalar,
): { grads: Map<string, tf.Tensor>; value: tf.Scalar } {
  const varList = [...trainable.values()];
  const nameOf = new Map([...trainable].map(([name, v]) => [v.name, name]));
  const sums = new Map<string, tf.Tensor>();
  let total: tf.Scalar = tf.scalar(0);
  for (let r = 0; r < rounds; r++) {
    const { value, grads } = tf.variableGrads(() => loss(r), varList);
    for (const [varName, g] of Object.entries(grads)) {
      const name = nameOf.get(varName)!;
      const previous = sums.get(name);
      sums.set(name, previous ? tf.add(previous, g) : g);
      if (previous) tf.dispose([previous, g]);
    }
    const nextTotal = tf.add(total, value) as tf.Scalar;
    tf.dispose([total, value]);
    total = nextTotal;
  }
  if (rounds > 1) {
    for (const [name, g] of sums) {
      sums.set(name, tf.div(g, rounds));
      g.dispose();
    }
  }
  const value = tf.div(total, rounds) as tf.Scalar;
  total.dispose();
  return { grads: sums, value };
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
  const defaults = defaultHyperparameters(
    gCfg.resolution,
    data.itemsPerEpoch(opts.hyper?.mirror ?? true),
    dCfg.mbstdGroupSize,
  );
  const hyper: TrainHyperparameters = { ...defaults, ...opts.hyper };
  if (opts.hyper?.batchSize && !opts.hyper.batchGpu) hyper.batchGpu = hyper.batchSize;
  if (opts.hyper?.batchSize && opts.hyper.r1Gamma === undefined)
    hyper.r1Gamma = autoR1Gamma(gCfg.resolution, hyper.batchSize);
  if (opts.hyper?.batchSize && opts.hyper.emaKimg === undefined) hyper.emaKimg = (hyper.batchSize * 10) / 32;
  checkHyperparameters(hyper, dCfg);

  await mkdir(opts.outDir, { recursive: true });
  const resumed = opts.resume === false ? null : await loadLatest(opts.outDir, config);
  const run = new TrainingRun(opts, hyper, gCfg, dCfg, resumed);
  try {
    return await run.train();
  } finally {
    run.dispose();
    // The run's variables copied the snapshot's tensors' data references; the tensors themselves go.
    if (resumed) disposeCheckpoint(resumed.ckpt);
  }
}

class TrainingRun {
  private readonly G: Generator;
  private readonly D: Discriminator;
  private readonly gParams: Map<string, tf.Variable>;
  private readonly dParams: Map<string, tf.Variable>;
  private readonly emaParams: Map<string, tf.Variable>;
  private readonly gTrainable: Map<string, tf.Variable>;
  private readonly dTrainable: Map<string, tf.Variable>;
  private readonly gOpt: Adam;
  private readonly dOpt: Adam;
  private readonly ada: AdaptiveAugment | null;
  private readonly state: TrainingState;
  private readonly itemsPerEpoch: number;
  private readonly totalImages: number;
  private readonly resumedFrom: string | null;
  private lossSums = new Map<string, { sum: number; count: number }>();
  private lastLosses: Record<string, number> = {};

  constructor(
    private readonly opts: FinetuneOptions,
    private readonly hyper: TrainHyperparameters,
    private readonly gCfg: GeneratorConfig,
    private readonly dCfg: DiscriminatorConfig,
    resumed: { ckpt: Checkpoint; state: TrainingState } | null,
  ) {
    const gBuffers = bufferNames(Generator.specs(gCfg));
    const dBuffers = bufferNames(Discriminator.specs(dCfg));
    const source = resumed
      ? { G: resumed.ckpt.G!, D: resumed.ckpt.D!, G_ema: resumed.ckpt.G_ema! }
      : opts.networks;
    this.gParams = asVariables(source.G, gBuffers);
    this.dParams = asVariables(source.D, dBuffers);
    this.emaParams = asVariables(source.G_ema ?? source.G, new Set(source.G.keys()));
    // This run's networks differentiate on every backend, to any order; other networks of the
    // process (a generate job beside this fine-tune) keep the native convolutions.
    const convOps = trainingConvOps();
    this.G = new Generator(gCfg, this.gParams, { convOps });
    this.D = new Discriminator(dCfg, this.dParams, { convOps });
    this.gTrainable = new Map([...this.gParams].filter(([name]) => !gBuffers.has(name)));
    const frozen = new Set(this.D.blocks.slice(0, hyper.freezeD).map((b) => b.prefix));
    this.dTrainable = new Map(
      [...this.dParams].filter(
        ([name]) => !dBuffers.has(name) && ![...frozen].some((p) => name.startsWith(p)),
      ),
    );
    const adamFor = (lr: number, interval: number | null) =>
      new Adam(lazyRegularizationAdam({ lr, ...STYLEGAN2_ADAM }, interval));
    this.gOpt = adamFor(hyper.glr, hyper.plWeight > 0 ? hyper.plInterval : null);
    this.dOpt = adamFor(hyper.dlr, hyper.r1Gamma > 0 ? hyper.r1Interval : null);
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
  }

  private augmentP(): number {
    const a = this.hyper.augment;
    if (a === 'off') return 0;
    if (a === 'ada') return this.ada!.p;
    return a.fixedP;
  }

  /** run_D: augmentation (its own draw per call) then D. */
  private discriminate(images: tf.Tensor4D, purposeIndex: number): tf.Tensor2D {
    const p = this.augmentP();
    let x = images;
    if (p > 0) {
      const [n, h, w] = images.shape;
      const rng = new NumpyRandomState(
        derivedSeed(this.state.seed, this.state.step, PURPOSE.augment * 16 + purposeIndex),
      );
      const spec = AUGMENT_PRESETS[this.hyper.augmentPreset];
      x = applyAugment(images, sampleAugment(spec, p, n, { height: h, width: w }, rng), spec.xintPad);
    }
    return this.D.forward(x);
  }

  /** run_G's mapping with style mixing: ws for `n` latents drawn from the purpose's seeds. */
  private mappedWs(
    n: number,
    zPurpose: number,
    mixPurpose: number,
    round: number,
  ): { ws: tf.Tensor3D; w: tf.Tensor2D } {
    const { seed, step } = this.state;
    const z = tf.randomNormal(
      [n, this.gCfg.zDim],
      0,
      1,
      'float32',
      derivedSeed(seed, step, zPurpose * 64 + round),
    ) as tf.Tensor2D;
    const w = this.G.mapping.embed(this.gParams, z);
    let ws = this.G.mapping.broadcast(w);
    const coin = new NumpyRandomState(derivedSeed(seed, step, PURPOSE.mixCoin * 64 + zPurpose * 8 + round));
    const cutoff = 1 + Math.floor(coin.randomSample() * (this.G.numWs - 1));
    if (this.hyper.styleMixing > 0 && coin.randomSample() < this.hyper.styleMixing) {
      const z2 = tf.randomNormal(
        [n, this.gCfg.zDim],
        0,
        1,
        'float32',
        derivedSeed(seed, step, mixPurpose * 64 + round),
      );
      ws = mixStyles(
        ws,
        this.G.mapping.broadcast(this.G.mapping.embed(this.gParams, z2 as tf.Tensor2D)),
        cutoff,
      );
    }
    return { ws, w };
  }

  private record(name: string, value: number): void {
    this.lastLosses[name] = value;
    const s = this.lossSums.get(name) ?? { sum: 0, count: 0 };
    s.sum += value;
    s.count++;
    this.lossSums.set(name, s);
  }

  private async step(items: number[]): Promise<void> {
    const { batchSize, batchGpu } = this.hyper;
    const rounds = batchSize / batchGpu;
    const step = this.state.step;
    const reals = this.opts.data.batch(items);
    const realRound = (r: number) => tf.slice(reals, [r * batchGpu], [batchGpu]) as tf.Tensor4D;
    try {
      // G main.
      const tracked: { wMean: tf.Tensor | null } = { wMean: null };
      const gMain = averagedGradients(rounds, this.gTrainable, (r) => {
        const { ws, w } = this.mappedWs(batchGpu, PURPOSE.gZ, PURPOSE.gMix, r);
        if (r === 0) tracked.wMean = tf.keep(tf.mean(w, 0));
        const images = this.G.synthesize(ws, { noiseMode: 'random' });
        return tf.mean(generatorLoss(this.discriminate(images, 0))) as tf.Scalar;
      });
      this.gOpt.apply(this.gParams, gMain.grads);
      this.record('G', (await gMain.value.data())[0]);
      tf.dispose([gMain.value, ...gMain.grads.values()]);
      if (tracked.wMean) this.trackWAvg(tracked.wMean);

      // G path-length regularisation.
      const { plWeight, plInterval, plBatchShrink } = this.hyper;
      if (plWeight > 0 && step % plInterval === 0) {
        const n = Math.max(1, Math.floor(batchGpu / plBatchShrink));
        // The running mean moves once per round; the last round's value is the one kept.
        const moved: { mean: tf.Scalar | null } = { mean: null };
        const greg = averagedGradients(rounds, this.gTrainable, (r) => {
          const { ws } = this.mappedWs(n, PURPOSE.plZ, PURPOSE.plMix, r);
          const pl = pathLengthPenalty(
            (w) => this.G.synthesize(w, { noiseMode: 'random' }),
            ws,
            this.state.plMean,
            {
              decay: this.hyper.plDecay,
              seed: derivedSeed(this.state.seed, step, PURPOSE.plNoise * 64 + r),
            },
          );
          moved.mean?.dispose();
          moved.mean = pl.mean;
          return tf.mul(tf.mean(pl.penalty), plWeight * plInterval) as tf.Scalar;
        });
        this.gOpt.apply(this.gParams, greg.grads);
        this.record('pl', (await greg.value.data())[0] / (plWeight * plInterval));
        if (moved.mean) {
          this.state.plMean = (await moved.mean.data())[0];
          moved.mean.dispose();
        }
        tf.dispose([greg.value, ...greg.grads.values()]);
      }

      // D main: generated images (no gradient into G) and reals.
      // Generated outside the gradient scope, so that G's ops are not taped for D's gradients.
      const fakes = Array.from({ length: rounds }, (_, r) =>
        tf.tidy(() =>
          this.G.synthesize(this.mappedWs(batchGpu, PURPOSE.dZ, PURPOSE.dMix, r).ws, { noiseMode: 'random' }),
        ),
      );
      let signSum = 0;
      const signs: tf.Tensor[] = [];
      const dMain = averagedGradients(rounds, this.dTrainable, (r) => {
        const fakeLoss = tf.mean(discriminatorFakeLoss(this.discriminate(fakes[r], 1)));
        const realLogits = this.discriminate(realRound(r), 2);
        signs.push(tf.keep(tf.sum(tf.sign(realLogits))));
        return tf.add(fakeLoss, tf.mean(discriminatorRealLoss(realLogits))) as tf.Scalar;
      });
      this.dOpt.apply(this.dParams, dMain.grads);
      this.record('D', (await dMain.value.data())[0]);
      for (const s of signs) signSum += (await s.data())[0];
      tf.dispose([dMain.value, ...dMain.grads.values(), ...signs, ...fakes]);
      this.ada?.update(signSum / batchSize, batchSize);

      // D R1 regularisation.
      const { r1Gamma, r1Interval } = this.hyper;
      if (r1Gamma > 0 && step % r1Interval === 0) {
        const dreg = averagedGradients(rounds, this.dTrainable, (r) => {
          const r1 = r1Penalty((x) => this.discriminate(x, 3), realRound(r));
          return tf.mul(tf.mean(r1), (r1Gamma / 2) * r1Interval) as tf.Scalar;
        });
        this.dOpt.apply(this.dParams, dreg.grads);
        this.record('r1', (await dreg.value.data())[0] / ((r1Gamma / 2) * r1Interval));
        tf.dispose([dreg.value, ...dreg.grads.values()]);
      }

      this.updateEma();
    } finally {
      reals.dispose();
    }
  }

  /** The mapping network's running mean of w (official w_avg_beta 0.995), for truncation later. */
  private trackWAvg(wMean: tf.Tensor): void {
    const wAvg = this.gParams.get('mapping.w_avg')!;
    tf.tidy(() => wAvg.assign(tf.add(wMean, tf.mul(tf.sub(wAvg, wMean), 0.995))));
    wMean.dispose();
  }

  private updateEma(): void {
    const beta = emaBeta(this.hyper.batchSize, this.hyper.emaKimg, {
      rampup: this.hyper.emaRampup,
      imagesSeen: this.state.imagesSeen,
    });
    tf.tidy(() => {
      for (const [name, ema] of this.emaParams) {
        const p = this.gParams.get(name)!;
        ema.assign(this.gTrainable.has(name) ? tf.add(p, tf.mul(tf.sub(ema, p), beta)) : p);
      }
    });
  }

  private async snapshot(epoch: number): Promise<string> {
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
        createdAt: new Date().toISOString(),
        extra: { training: { ...this.state }, hyperparameters: { ...this.hyper } },
      },
      G: this.gParams,
      D: this.dParams,
      G_ema: this.emaParams,
    });
    const seeds = this.opts.previewSeeds ?? Array.from({ length: 16 }, (_, i) => i);
    if (seeds.length > 0) {
      await writePreview(
        previewPath(this.opts.outDir, epoch),
        this.gCfg,
        this.emaParams,
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
    });
    return path;
  }

  async train(): Promise<FinetuneResult> {
    const { batchSize } = this.hyper;
    const { snapshotEvery, epochs, signal, onProgress } = this.opts;
    const started = performance.now();
    const startImages = this.state.imagesSeen;
    let cancelled = false;
    while (this.state.imagesSeen < this.totalImages) {
      if (signal?.aborted) {
        cancelled = true;
        break;
      }
      const items = streamItems(this.itemsPerEpoch, this.state.seed, this.state.imagesSeen, batchSize);
      await this.step(items);
      // On wasm/cpu a step resolves through microtasks only: yield to the event loop so progress
      // writes, IPC to the bot and cancellation signals get through while training runs.
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.state.step++;
      this.state.imagesSeen += batchSize;
      const before = this.state.epoch;
      this.state.epoch = Math.min(epochs, Math.floor(this.state.imagesSeen / this.itemsPerEpoch));
      const finished = this.state.imagesSeen >= this.totalImages;
      let snapshot: string | undefined;
      if (finished || Math.floor(this.state.epoch / snapshotEvery) > Math.floor(before / snapshotEvery)) {
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
        snapshot,
      });
    }
    return {
      snapshots: await listSnapshots(this.opts.outDir),
      state: { ...this.state, ada: this.ada?.state() ?? null },
      cancelled,
      resumedFrom: this.resumedFrom,
    };
  }

  dispose(): void {
    this.gOpt.dispose();
    this.dOpt.dispose();
    for (const params of [this.gParams, this.dParams, this.emaParams])
      for (const v of params.values()) v.dispose();
    releaseDerivedWeights();
  }
}
