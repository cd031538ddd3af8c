// One round of each training phase (a slice of the minibatch of batchGpu images): its loss and
// gradients, summed over the rounds asked for. The main thread (phases.ts) and the round threads
// (round-thread.ts) run this same code, so where a round runs does not change what it computes.
import type { DiscriminatorConfig, GeneratorConfig } from '../config.ts';
import { Discriminator } from '../networks/discriminator.ts';
import { Generator, mixStyles } from '../networks/generator.ts';
import { bufferNames } from '../networks/specs.ts';
import { trainingConvOps } from '../ops/grad/install.ts';
import { NumpyRandomState } from '../seeds.ts';
import { tf } from '../tf.ts';
import { AUGMENT_PRESETS, applyAugment, sampleAugment } from './augment.ts';
import type { TrainingSet } from './data.ts';
import type { TrainHyperparameters } from './hyperparameters.ts';
import {
  discriminatorFakeLoss,
  discriminatorRealLoss,
  generatorLoss,
  pathLengthPenalty,
  r1Penalty,
} from './loss.ts';

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
  gNoise: 10,
  dNoise: 11,
  plSynthNoise: 12,
} as const;

/** Integer seed for tfjs's seeded random ops, unique per (run seed, step, purpose). */
function derivedSeed(seed: number, step: number, purpose: number): number {
  return (((seed * 2_654_435_761) ^ (step * 40_503) ^ (purpose * 97_531)) >>> 0) % 2 ** 31;
}

/** Adds `g` into `sums[name]` (taking it over as the sum when it is the first). */
export function addGradient(sums: Map<string, tf.Tensor>, name: string, g: tf.Tensor): void {
  const previous = sums.get(name);
  sums.set(name, previous ? tf.add(previous, g) : g);
  if (previous) tf.dispose([previous, g]);
}

/**
 * Gradients of a scalar loss summed over `rounds`, keyed by parameter name, and the summed loss.
 * `loss(r)` runs inside the gradient scope; tensors it must hand out it keeps itself.
 */
async function summedGradients(
  rounds: readonly number[],
  trainable: Map<string, tf.Variable>,
  loss: (round: number) => tf.Scalar,
): Promise<{ grads: Map<string, tf.Tensor>; loss: number }> {
  const varList = [...trainable.values()];
  const nameOf = new Map([...trainable].map(([name, v]) => [v.name, name]));
  const sums = new Map<string, tf.Tensor>();
  let total = 0;
  for (const r of rounds) {
    const { value, grads } = tf.variableGrads(() => loss(r), varList);
    for (const [varName, g] of Object.entries(grads)) addGradient(sums, nameOf.get(varName)!, g);
    total += (await value.data())[0];
    value.dispose();
  }
  return { grads: sums, loss: total };
}

/** The phases of a step, in the official order. */
export type Phase = 'Gmain' | 'Greg' | 'Dmain' | 'Dreg';

/** What a round depends on besides the networks and the minibatch: the same in every thread. */
export interface RoundContext {
  seed: number;
  step: number;
  augmentP: number;
  plMean: number;
}

/** A phase's sums over some of its rounds; the step divides by its number of rounds. */
export interface RoundSums {
  grads: Map<string, tf.Tensor>;
  loss: number;
  /** Dmain: the sum of sign(D(real)) over the rounds' images, for ADA. */
  signSum: number;
  /** Greg: the running mean of path lengths each round moved to, [round, mean]. */
  plMeans: [number, number][];
  /** Gmain with round 0: that round's mean w, for the w_avg tracker (kept; the caller disposes). */
  wMean: tf.Tensor | null;
}

/**
 * One round of each phase: its loss and the gradients, summed over the rounds asked for. A round
 * depends only on the networks, the minibatch's items and the RoundContext (every random draw is
 * seeded from the run's seed, the step, the round and its purpose), so round r gives the same
 * gradients on the main thread and in a round thread (round-threads.ts).
 */
export class PhaseRounds {
  readonly G: Generator;
  readonly D: Discriminator;
  readonly gTrainable: Map<string, tf.Variable>;
  readonly dTrainable: Map<string, tf.Variable>;

  constructor(
    private readonly gCfg: GeneratorConfig,
    dCfg: DiscriminatorConfig,
    private readonly gParams: Map<string, tf.Variable>,
    dParams: Map<string, tf.Variable>,
    private readonly hyper: TrainHyperparameters,
    private readonly data: TrainingSet,
  ) {
    const gBuffers = bufferNames(Generator.specs(gCfg));
    const dBuffers = bufferNames(Discriminator.specs(dCfg));
    // This run's networks differentiate on every backend, to any order; other networks of the
    // process (a generate job beside this fine-tune) keep the native convolutions.
    const convOps = trainingConvOps();
    this.G = new Generator(gCfg, gParams, { convOps });
    this.D = new Discriminator(dCfg, dParams, { convOps });
    this.gTrainable = new Map([...gParams].filter(([name]) => !gBuffers.has(name)));
    const frozen = new Set(this.D.blocks.slice(0, hyper.freezeD).map((b) => b.prefix));
    this.dTrainable = new Map(
      [...dParams].filter(([name]) => !dBuffers.has(name) && ![...frozen].some((p) => name.startsWith(p))),
    );
  }

  async run(
    phase: Phase,
    rounds: readonly number[],
    ctx: RoundContext,
    items: readonly number[],
  ): Promise<RoundSums> {
    const sums: RoundSums = { grads: new Map(), loss: 0, signSum: 0, plMeans: [], wMean: null };
    if (rounds.length === 0) return sums;
    const { batchGpu } = this.hyper;
    switch (phase) {
      case 'Gmain': {
        const { grads, loss } = await summedGradients(rounds, this.gTrainable, (r) => {
          const { ws, w } = this.mappedWs(ctx, batchGpu, PURPOSE.gZ, PURPOSE.gMix, r);
          if (r === 0) sums.wMean = tf.keep(tf.mean(w, 0));
          const images = this.G.synthesize(ws, this.noise(ctx, PURPOSE.gNoise, r));
          return tf.mean(generatorLoss(this.discriminate(ctx, images, 'Gmain', r))) as tf.Scalar;
        });
        return { ...sums, grads, loss };
      }
      case 'Greg': {
        const { plWeight, plInterval, plBatchShrink } = this.hyper;
        const n = Math.max(1, Math.floor(batchGpu / plBatchShrink));
        const means: [number, tf.Scalar][] = [];
        try {
          const { grads, loss } = await summedGradients(rounds, this.gTrainable, (r) => {
            const { ws } = this.mappedWs(ctx, n, PURPOSE.plZ, PURPOSE.plMix, r);
            const pl = pathLengthPenalty(
              (w) => this.G.synthesize(w, this.noise(ctx, PURPOSE.plSynthNoise, r)),
              ws,
              ctx.plMean,
              { decay: this.hyper.plDecay, seed: derivedSeed(ctx.seed, ctx.step, PURPOSE.plNoise * 64 + r) },
            );
            means.push([r, pl.mean]);
            return tf.mul(tf.mean(pl.penalty), plWeight * plInterval) as tf.Scalar;
          });
          for (const [r, mean] of means) sums.plMeans.push([r, (await mean.data())[0]]);
          return { ...sums, grads, loss };
        } finally {
          tf.dispose(means.map(([, m]) => m));
        }
      }
      case 'Dmain': {
        const signs: tf.Tensor[] = [];
        // Generated outside the gradient scope, so that G's ops are not taped for D's gradients.
        const fakes = new Map(
          rounds.map((r) => [
            r,
            tf.tidy(() =>
              this.G.synthesize(
                this.mappedWs(ctx, batchGpu, PURPOSE.dZ, PURPOSE.dMix, r).ws,
                this.noise(ctx, PURPOSE.dNoise, r),
              ),
            ),
          ]),
        );
        try {
          const { grads, loss } = await summedGradients(rounds, this.dTrainable, (r) => {
            const fakeLoss = tf.mean(
              discriminatorFakeLoss(this.discriminate(ctx, fakes.get(r)!, 'DmainFake', r)),
            );
            const realLogits = this.discriminate(ctx, this.reals(items, r), 'DmainReal', r);
            signs.push(tf.keep(tf.sum(tf.sign(realLogits))));
            return tf.add(fakeLoss, tf.mean(discriminatorRealLoss(realLogits))) as tf.Scalar;
          });
          for (const s of signs) sums.signSum += (await s.data())[0];
          return { ...sums, grads, loss };
        } finally {
          tf.dispose([...signs, ...fakes.values()]);
        }
      }
      case 'Dreg': {
        const { r1Gamma, r1Interval } = this.hyper;
        const weight = (r1Gamma / 2) * r1Interval;
        const { grads, loss } = await summedGradients(rounds, this.dTrainable, (r) => {
          const r1 = r1Penalty((x) => this.discriminate(ctx, x, 'Dreg', r), this.reals(items, r));
          return tf.mul(tf.mean(r1), weight) as tf.Scalar;
        });
        return { ...sums, grads, loss };
      }
    }
  }

  /** Round r's real images: its slice of the minibatch's items. */
  private reals(items: readonly number[], round: number): tf.Tensor4D {
    const { batchGpu } = this.hyper;
    return this.data.batch(items.slice(round * batchGpu, (round + 1) * batchGpu));
  }

  /** Random noise inputs drawn from a seed of their own per step, round and purpose. */
  private noise(ctx: RoundContext, purpose: number, round: number) {
    return { noiseMode: 'random' as const, noiseSeed: derivedSeed(ctx.seed, ctx.step, purpose * 64 + round) };
  }

  /** run_D: augmentation (its own draw per call and round) then D. */
  private discriminate(ctx: RoundContext, images: tf.Tensor4D, call: DCall, round: number): tf.Tensor2D {
    const p = ctx.augmentP;
    let x = images;
    if (p > 0) {
      const [n, h, w] = images.shape;
      // Round 0 keeps the stream number it had before rounds drew their own.
      const stream = PURPOSE.augment * 16 + D_CALL_STREAM[call] + round * 4096;
      const rng = new NumpyRandomState(derivedSeed(ctx.seed, ctx.step, stream));
      const spec = AUGMENT_PRESETS[this.hyper.augmentPreset];
      x = applyAugment(images, sampleAugment(spec, p, n, { height: h, width: w }, rng), spec.xintPad);
    }
    return this.D.forward(x);
  }

  /** run_G's mapping with style mixing: ws for `n` latents drawn from the purpose's seeds. */
  private mappedWs(
    ctx: RoundContext,
    n: number,
    zPurpose: number,
    mixPurpose: number,
    round: number,
  ): { ws: tf.Tensor3D; w: tf.Tensor2D } {
    const { seed, step } = ctx;
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
}
