// `npm run bench -- train`: seconds per thousand training images (the official s/kimg), for the
// full loop (G and D steps, lazy R1 and path length at their intervals, ADA, EMA) on random data.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  type Architecture,
  type ArchitectureFlags,
  addArchitectureOptions,
  parseArchitecture,
  positiveInt,
} from '../cli/options.ts';
import { initBackend } from '../model/backend.ts';
import { defaultDiscriminatorConfig, defaultGeneratorConfig, type ModelConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Discriminator } from '../model/networks/discriminator.ts';
import { Generator } from '../model/networks/generator.ts';
import { TrainingSet } from '../model/train/data.ts';
import { finetune } from '../model/train/trainer.ts';
import { machineDescription, markdownTable, today } from './common.ts';

export interface TrainBenchOptions extends Architecture {
  resolution: number;
  batchSize: number;
  /** Timed minibatches, after `warmup` untimed ones; a multiple of 16 covers every regulariser. */
  steps: number;
  warmup: number;
  /** Round threads (wasm/cpu): the minibatch split into that many rounds side by side. */
  threads?: number;
}

export interface TrainBenchResult {
  secondsPerKimg: number;
  imagesPerSecond: number;
  stepsTimed: number;
}

/** Runs the training loop on random images and times the minibatches after the warm-up. */
export async function benchTraining(o: TrainBenchOptions): Promise<TrainBenchResult> {
  const common = { resolution: o.resolution, channelBase: o.channelBase, channelMax: o.channelMax };
  const config: ModelConfig = {
    G: defaultGeneratorConfig({
      ...common,
      mappingLayers: o.mappingLayers,
      zDim: o.zDim,
      wDim: o.wDim,
    }),
    D: defaultDiscriminatorConfig(common),
  };
  const steps = o.warmup + o.steps;
  const images = steps * o.batchSize;
  const pixels = new Uint8Array(images * o.resolution * o.resolution * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2_654_435_761) >>> 24;
  const outDir = await mkdtemp(join(tmpdir(), 'facestyle-bench-train-'));
  const times: number[] = [];
  try {
    await finetune({
      outDir,
      name: 'bench',
      config,
      networks: {
        G: initParams(Generator.specs(config.G), 1),
        D: initParams(Discriminator.specs(config.D!), 2),
      },
      data: new TrainingSet(pixels, o.resolution),
      epochs: 1,
      snapshotEvery: 1,
      hyper: { batchSize: o.batchSize, mirror: false, augment: { fixedP: 0.2 } },
      previewSeeds: [],
      resume: false,
      threads: o.threads ?? 1,
      onProgress: () => times.push(performance.now()),
    });
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
  // times[k] is the end of minibatch k + 1; the last one also wrote the final snapshot.
  const stepsTimed = o.steps - 1;
  const seconds = (times[steps - 2] - times[o.warmup - 1]) / 1000;
  const imagesPerSecond = (stepsTimed * o.batchSize) / seconds;
  return { secondsPerKimg: 1000 / imagesPerSecond, imagesPerSecond, stepsTimed };
}

export function register(bench: Command): void {
  const command = bench
    .command('train')
    .description('seconds per kimg of the training loop (G, D, lazy R1 and path length, ADA, EMA)')
    .option('--res <px>', 'resolution', '32')
    .option('--batch <n>', 'minibatch (paper256: 64 on 8 GPUs; 32 on one)', '32')
    .option('--steps <n>', 'timed minibatches', '16')
    .option('--warmup <n>', 'untimed minibatches first', '2')
    .option('--threads <list>', 'round threads, e.g. 1,2: one row each, alternated in one run', '1');
  addArchitectureOptions(command).action(async (opts: Record<string, string>, cmd: Command) => {
    const info = await initBackend(cmd.optsWithGlobals().backend);
    const o: TrainBenchOptions = {
      resolution: positiveInt('--res', opts.res),
      ...parseArchitecture(opts as unknown as ArchitectureFlags),
      batchSize: positiveInt('--batch', opts.batch),
      steps: Math.max(2, positiveInt('--steps', opts.steps)),
      warmup: positiveInt('--warmup', opts.warmup),
    };
    const threadCounts = String(opts.threads)
      .split(',')
      .map((t) => positiveInt('--threads', t.trim()));
    const rows: (string | number)[][] = [];
    for (const threads of threadCounts) {
      const r = await benchTraining({ ...o, threads });
      rows.push([
        today(),
        info.name,
        machineDescription(info),
        o.resolution,
        `${o.channelBase}/${o.channelMax}`,
        o.batchSize,
        threads,
        r.secondsPerKimg.toFixed(1),
        r.imagesPerSecond.toFixed(2),
      ]);
    }
    process.stdout.write(
      `${markdownTable(['date', 'backend', 'machine', 'res', 'cbase/cmax', 'batch', 'threads', 's/kimg', 'img/s'], rows)}\n`,
    );
  });
}
