// One training step (a minibatch) in the official phase order of training_loop.py: Gmain (the
// non-saturating loss through D(augment)), Greg (path-length regularisation every plInterval
// steps), Dmain (logistic loss on augmented fakes and reals), Dreg (R1 every r1Interval steps).
// Each phase takes its own Adam step with the lazy regularisation correction; then the w_avg
// tracker and the generator EMA. Minibatches larger than batchGpu are split into rounds whose
// gradients are averaged.
import type { DiscriminatorConfig, GeneratorConfig } from '../config.ts';
import { Discriminator } from '../networks/discriminator.ts';
import { Generator, mixStyles } from '../networks/generator.ts';
import { bufferNames } from '../networks/specs.ts';
import { releaseDerivedWeights } from '../ops/conv.ts';
import { trainingConvOps } from '../ops/grad/install.ts';
import type { ParamStore } from '../params.ts';
import { NumpyRandomState } from '../seeds.ts';
import { tf } from '../tf.ts';
import { Adam, STYLEGAN2_ADAM } from './adam.ts';
import { type AdaptiveAugment, AUGMENT_PRESETS, applyAugment, sampleAugment } from './augment.ts';
import type { TrainingSet } from './data.ts';
import type { TrainHyperparameters } from './hyperparameters.ts';
import {
  discriminatorFakeLoss,
  discriminatorRealLoss,
  emaBeta,
  generatorLoss,
  lazyRegularizationAdam,
  pathLengthPenalty,
  r1Penalty,
} from './loss.ts';
import type { TrainingState } from './snapshot.ts';

/** The mapping network's running mean of w moves this little per step (official w_avg_beta). */
export const W_AVG_BETA = 0.995;

/**
 * The calls of D in one step. Each draws its own augmentation (as the official run_D does per
 * call); the number picks that draw's seed stream, so it must not change (resumed runs and
 * seeded tests reproduce their augmentations).
 */
const D_CALL_STREAM = { Gmain: 0, DmainFake: 1, DmainReal: 2, Dreg: 3 } as const;
type DCall = keyof typeof D_CALL_STREAM;

/** What each seed stream of a step is for (fixed numbers, for the same reason). */
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

/** Integer seed for tfjs's seeded random ops, unique per (run seed, step, purpose). */
function derivedSeed(seed: number, step: number, purpose: number): number {
  return (((seed * 2_654_435_761) ^ (step * 40_503) ^ (purpose * 97_531)) >>> 0) % 2 ** 31;
}

/** A network's parameters as variables: trainable ones registered for gradients, buffers not. */
function asVariables(params: ParamStore, buffers: Set<string>): Map<string, tf.Variable> {
  return new Map([...params].map(([name, t]) => [name, tf.variable(t, !buffers.has(name))]));
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

export interface StartingNetworks {
  G: ParamStore;
  D: ParamStore;
  G_ema?: ParamStore;
}

/** The networks being trained, their optimisers, and the step that updates them. */
export class MinibatchTrainer {
  readonly G: Generator;
  readonly D: Discriminator;
  readonly gParams: Map<string, tf.Variable>;
  readonly dParams: Map<string, tf.Variable>;
  readonly emaParams: Map<string, tf.Variable>;
  private readonly gTrainable: Map<string, tf.Variable>;
  private readonly dTrainable: Map<string, tf.Variable>;
  private readonly gOpt: Adam;
  private readonly dOpt: Adam;
  private readonly rounds: number;

  constructor(
    private readonly gCfg: GeneratorConfig,
    dCfg: DiscriminatorConfig,
    source: StartingNetworks,
    private readonly hyper: TrainHyperparameters,
    private readonly data: TrainingSet,
    /** Shared with the loop: the step reads seed and step, and moves plMean. */
    private readonly state: TrainingState,
    private readonly ada: AdaptiveAugment | null,
  ) {
    const gBuffers = bufferNames(Generator.specs(gCfg));
    const dBuffers = bufferNames(Discriminator.specs(dCfg));
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
    this.rounds = hyper.batchSize / hyper.batchGpu;
  }

  augmentP(): number {
    const a = this.hyper.augment;
    if (a === 'off') return 0;
    if (a === 'ada') return this.ada!.p;
    return a.fixedP;
  }

  /** One minibatch through every phase due at this step; returns the losses of those phases. */
  async step(items: number[]): Promise<Record<string, number>> {
    const { plWeight, plInterval, r1Gamma, r1Interval } = this.hyper;
    const step = this.state.step;
    const reals = this.data.batch(items);
    const losses: Record<string, number> = {};
    try {
      losses.G = await this.generatorMain();
      if (plWeight > 0 && step % plInterval === 0) losses.pl = await this.generatorPathLength();
      losses.D = await this.discriminatorMain(reals);
      if (r1Gamma > 0 && step % r1Interval === 0) losses.r1 = await this.discriminatorR1(reals);
      this.updateEma();
    } finally {
      reals.dispose();
    }
    return losses;
  }

  dispose(): void {
    this.gOpt.dispose();
    this.dOpt.dispose();
    for (const params of [this.gParams, this.dParams, this.emaParams])
      for (const v of params.values()) v.dispose();
    releaseDerivedWeights();
  }

  /** Gmain: the generator's non-saturating loss; also feeds the w_avg tracker. */
  private async generatorMain(): Promise<number> {
    const { batchGpu } = this.hyper;
    const tracked: { wMean: tf.Tensor | null } = { wMean: null };
    const gMain = averagedGradients(this.rounds, this.gTrainable, (r) => {
      const { ws, w } = this.mappedWs(batchGpu, PURPOSE.gZ, PURPOSE.gMix, r);
      if (r === 0) tracked.wMean = tf.keep(tf.mean(w, 0));
      const images = this.G.synthesize(ws, { noiseMode: 'random' });
      return tf.mean(generatorLoss(this.discriminate(images, 'Gmain'))) as tf.Scalar;
    });
    this.gOpt.apply(this.gParams, gMain.grads);
    const loss = (await gMain.value.data())[0];
    tf.dispose([gMain.value, ...gMain.grads.values()]);
    if (tracked.wMean) this.trackWAvg(tracked.wMean);
    return loss;
  }

  /** Greg: path-length regularisation; returns the penalty before its weight. */
  private async generatorPathLength(): Promise<number> {
    const { batchGpu, plWeight, plInterval, plBatchShrink } = this.hyper;
    const step = this.state.step;
    const n = Math.max(1, Math.floor(batchGpu / plBatchShrink));
    // The running mean moves once per round; the last round's value is the one kept.
    const moved: { mean: tf.Scalar | null } = { mean: null };
    const greg = averagedGradients(this.rounds, this.gTrainable, (r) => {
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
    const penalty = (await greg.value.data())[0] / (plWeight * plInterval);
    if (moved.mean) {
      this.state.plMean = (await moved.mean.data())[0];
      moved.mean.dispose();
    }
    tf.dispose([greg.value, ...greg.grads.values()]);
    return penalty;
  }

  /** Dmain: D's logistic loss on generated images (no gradient into G) and reals; feeds ADA. */
  private async discriminatorMain(reals: tf.Tensor4D): Promise<number> {
    const { batchSize, batchGpu } = this.hyper;
    // Generated outside the gradient scope, so that G's ops are not taped for D's gradients.
    const fakes = Array.from({ length: this.rounds }, (_, r) =>
      tf.tidy(() =>
        this.G.synthesize(this.mappedWs(batchGpu, PURPOSE.dZ, PURPOSE.dMix, r).ws, { noiseMode: 'random' }),
      ),
    );
    let signSum = 0;
    const signs: tf.Tensor[] = [];
    const dMain = averagedGradients(this.rounds, this.dTrainable, (r) => {
      const fakeLoss = tf.mean(discriminatorFakeLoss(this.discriminate(fakes[r], 'DmainFake')));
      const realLogits = this.discriminate(this.realRound(reals, r), 'DmainReal');
      signs.push(tf.keep(tf.sum(tf.sign(realLogits))));
      return tf.add(fakeLoss, tf.mean(discriminatorRealLoss(realLogits))) as tf.Scalar;
    });
    this.dOpt.apply(this.dParams, dMain.grads);
    const loss = (await dMain.value.data())[0];
    for (const s of signs) signSum += (await s.data())[0];
    tf.dispose([dMain.value, ...dMain.grads.values(), ...signs, ...fakes]);
    this.ada?.update(signSum / batchSize, batchSize);
    return loss;
  }

  /** Dreg: the R1 penalty on reals; returns it before its weight. */
  private async discriminatorR1(reals: tf.Tensor4D): Promise<number> {
    const { r1Gamma, r1Interval } = this.hyper;
    const weight = (r1Gamma / 2) * r1Interval;
    const dreg = averagedGradients(this.rounds, this.dTrainable, (r) => {
      const r1 = r1Penalty((x) => this.discriminate(x, 'Dreg'), this.realRound(reals, r));
      return tf.mul(tf.mean(r1), weight) as tf.Scalar;
    });
    this.dOpt.apply(this.dParams, dreg.grads);
    const penalty = (await dreg.value.data())[0] / weight;
    tf.dispose([dreg.value, ...dreg.grads.values()]);
    return penalty;
  }

  private realRound(reals: tf.Tensor4D, round: number): tf.Tensor4D {
    const { batchGpu } = this.hyper;
    return tf.slice(reals, [round * batchGpu], [batchGpu]) as tf.Tensor4D;
  }

  /** run_D: augmentation (its own draw per call) then D. */
  private discriminate(images: tf.Tensor4D, call: DCall): tf.Tensor2D {
    const p = this.augmentP();
    let x = images;
    if (p > 0) {
      const [n, h, w] = images.shape;
      const rng = new NumpyRandomState(
        derivedSeed(this.state.seed, this.state.step, PURPOSE.augment * 16 + D_CALL_STREAM[call]),
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

  /** w_avg = lerp(mean w of this step, w_avg, W_AVG_BETA), for truncation later. */
  private trackWAvg(wMean: tf.Tensor): void {
    const wAvg = this.gParams.get('mapping.w_avg')!;
    tf.tidy(() => wAvg.assign(tf.add(wMean, tf.mul(tf.sub(wAvg, wMean), W_AVG_BETA))));
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
}
