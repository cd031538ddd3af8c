// One training step (a minibatch) in the official phase order of training_loop.py: Gmain (the
// non-saturating loss through D(augment)), Greg (path-length regularisation every plInterval
// steps), Dmain (logistic loss on augmented fakes and reals), Dreg (R1 every r1Interval steps).
// Each phase takes its own Adam step with the lazy regularisation correction; then the w_avg
// tracker and the generator EMA. Minibatches larger than batchGpu are split into rounds whose
// gradients are averaged (rounds.ts); on the CPU backends the rounds may run side by side on
// round threads (round-threads.ts).
import type { DiscriminatorConfig, GeneratorConfig } from '../config.ts';
import { Discriminator } from '../networks/discriminator.ts';
import { Generator } from '../networks/generator.ts';
import { bufferNames } from '../networks/specs.ts';
import { releaseDerivedWeights } from '../ops/conv.ts';
import type { ParamStore } from '../params.ts';
import { tf } from '../tf.ts';
import { Adam, STYLEGAN2_ADAM } from './adam.ts';
import type { AdaptiveAugment } from './augment.ts';
import type { TrainingSet } from './data.ts';
import type { TrainHyperparameters } from './hyperparameters.ts';
import { emaBeta, lazyRegularizationAdam } from './loss.ts';
import { type RoundSumsData, RoundThreads, readParams } from './round-threads.ts';
import { addGradient, type Phase, PhaseRounds, type RoundContext, type RoundSums } from './rounds.ts';
import type { TrainingState } from './snapshot.ts';

/** The mapping network's running mean of w moves this little per step (official w_avg_beta). */
export const W_AVG_BETA = 0.995;

/** A network's parameters as variables: trainable ones registered for gradients, buffers not. */
function asVariables(params: ParamStore, buffers: Set<string>): Map<string, tf.Variable> {
  return new Map([...params].map(([name, t]) => [name, tf.variable(t, !buffers.has(name))]));
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
  private readonly phases: PhaseRounds;
  private readonly gOpt: Adam;
  private readonly dOpt: Adam;
  private readonly rounds: number;
  /** Round threads beside this one (threads - 1 of them), started by startThreads. */
  private pool: RoundThreads | null = null;
  /** Bumped by every update of a network: the round threads copy it only when it changed. */
  private readonly versions = { G: 0, D: 0 };

  constructor(
    gCfg: GeneratorConfig,
    private readonly dCfg: DiscriminatorConfig,
    source: StartingNetworks,
    private readonly hyper: TrainHyperparameters,
    private readonly data: TrainingSet,
    /** Shared with the loop: the step reads seed and step, and moves plMean. */
    private readonly state: TrainingState,
    private readonly ada: AdaptiveAugment | null,
  ) {
    this.gParams = asVariables(source.G, bufferNames(Generator.specs(gCfg)));
    this.dParams = asVariables(source.D, bufferNames(Discriminator.specs(dCfg)));
    this.emaParams = asVariables(source.G_ema ?? source.G, new Set(source.G.keys()));
    this.phases = new PhaseRounds(gCfg, dCfg, this.gParams, this.dParams, hyper, data);
    this.G = this.phases.G;
    this.D = this.phases.D;
    const adamFor = (lr: number, interval: number | null) =>
      new Adam(lazyRegularizationAdam({ lr, ...STYLEGAN2_ADAM }, interval));
    this.gOpt = adamFor(hyper.glr, hyper.plWeight > 0 ? hyper.plInterval : null);
    this.dOpt = adamFor(hyper.dlr, hyper.r1Gamma > 0 ? hyper.r1Interval : null);
    this.rounds = hyper.batchSize / hyper.batchGpu;
  }

  /**
   * Runs the minibatch's rounds on `threads` threads (this one and threads - 1 round threads,
   * each with its own wasm or cpu engine): on CPU backends one engine uses one core. At most one
   * thread per round; returns how many run.
   */
  async startThreads(threads: number): Promise<number> {
    const count = Math.min(threads, this.rounds);
    if (count <= 1 || this.pool) return this.pool ? this.pool.size + 1 : 1;
    this.pool = await RoundThreads.start(count - 1, {
      gCfg: this.G.cfg,
      dCfg: this.dCfg,
      hyper: this.hyper,
      G: await readParams(this.gParams),
      D: await readParams(this.dParams),
      pixels: this.data.pixels,
      resolution: this.data.resolution,
      dataId: this.data.id,
    });
    return count;
  }

  augmentP(): number {
    const a = this.hyper.augment;
    if (a === 'off') return 0;
    if (a === 'ada') return this.ada!.p;
    return a.fixedP;
  }

  /** One minibatch through every phase due at this step; returns the losses of those phases. */
  async step(items: number[]): Promise<Record<string, number>> {
    const { plWeight, plInterval, r1Gamma, r1Interval, batchSize } = this.hyper;
    const step = this.state.step;
    const ctx = (): RoundContext => ({
      seed: this.state.seed,
      step,
      augmentP: this.augmentP(),
      plMean: this.state.plMean,
    });
    const losses: Record<string, number> = {};
    // Gmain: the generator's non-saturating loss; its round 0 feeds the w_avg tracker.
    const gMain = await this.runPhase('Gmain', ctx(), items);
    this.apply('G', gMain);
    losses.G = gMain.loss / this.rounds;
    if (gMain.wMean) this.trackWAvg(gMain.wMean);
    if (plWeight > 0 && step % plInterval === 0) {
      // Greg: path-length regularisation; the running mean moves once per round, the last kept.
      const greg = await this.runPhase('Greg', ctx(), items);
      this.apply('G', greg);
      losses.pl = greg.loss / this.rounds / (plWeight * plInterval);
      const last = greg.plMeans.sort((a, b) => a[0] - b[0]).at(-1);
      if (last) this.state.plMean = last[1];
    }
    // Dmain: D's logistic loss on generated images and reals; feeds ADA.
    const dMain = await this.runPhase('Dmain', ctx(), items);
    this.apply('D', dMain);
    losses.D = dMain.loss / this.rounds;
    this.ada?.update(dMain.signSum / batchSize, batchSize);
    if (r1Gamma > 0 && step % r1Interval === 0) {
      // Dreg: the R1 penalty on reals, reported before its weight.
      const dreg = await this.runPhase('Dreg', ctx(), items);
      this.apply('D', dreg);
      losses.r1 = dreg.loss / this.rounds / ((r1Gamma / 2) * r1Interval);
    }
    this.updateEma();
    return losses;
  }

  /**
   * A phase's rounds: round r runs on thread r mod threads (this thread is 0). The round threads
   * get their work first, so they compute while this thread does its share.
   */
  private async runPhase(phase: Phase, ctx: RoundContext, items: readonly number[]): Promise<RoundSums> {
    const threads = this.pool ? this.pool.size + 1 : 1;
    const all = Array.from({ length: this.rounds }, (_, r) => r);
    // Posted before this thread starts its own rounds, which hold it until they are done.
    const remote = this.pool
      ? await this.pool.send(phase, ctx, items, (t) => all.filter((r) => r % threads === t + 1), {
          G: { version: this.versions.G, params: this.phases.gTrainable },
          D: { version: this.versions.D, params: this.phases.dTrainable },
        })
      : null;
    let sums: RoundSums;
    try {
      sums = await this.phases.run(
        phase,
        all.filter((r) => r % threads === 0),
        ctx,
        items,
      );
    } catch (err) {
      await remote?.answers.catch(() => undefined);
      throw err;
    }
    if (remote) {
      let answers: RoundSumsData[];
      try {
        answers = await remote.answers;
      } catch (err) {
        tf.dispose([...sums.grads.values(), ...(sums.wMean ? [sums.wMean] : [])]);
        throw err;
      }
      for (const a of answers) {
        sums.loss += a.loss;
        sums.signSum += a.signSum;
        sums.plMeans.push(...a.plMeans);
        for (const [name, data] of Object.entries(a.grads)) {
          addGradient(sums.grads, name, tf.tensor(data, this.shapeOf(name)));
        }
      }
    }
    if (this.rounds > 1) {
      for (const [name, g] of sums.grads) {
        sums.grads.set(name, tf.div(g, this.rounds));
        g.dispose();
      }
    }
    return sums;
  }

  private shapeOf(name: string): number[] {
    const v = this.gParams.get(name) ?? this.dParams.get(name);
    if (!v) throw new Error(`a round thread sent a gradient of an unknown parameter ${name}`);
    return v.shape;
  }

  /** Adam on the phase's mean gradients; the round threads see the network's new version. */
  private apply(network: 'G' | 'D', sums: RoundSums): void {
    (network === 'G' ? this.gOpt : this.dOpt).apply(
      network === 'G' ? this.gParams : this.dParams,
      sums.grads,
    );
    tf.dispose([...sums.grads.values()]);
    this.versions[network]++;
  }

  async dispose(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
    this.gOpt.dispose();
    this.dOpt.dispose();
    for (const params of [this.gParams, this.dParams, this.emaParams])
      for (const v of params.values()) v.dispose();
    releaseDerivedWeights();
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
        ema.assign(this.phases.gTrainable.has(name) ? tf.add(p, tf.mul(tf.sub(ema, p), beta)) : p);
      }
    });
  }
}
