// `npm run bench -- project [--backend wasm] [--res 256] [--steps 10]`: projection steps per second
// (one Adam step: synthesis forward + backward to the latent, plus the discriminator's when the
// perceptual loss is on) for randomly initialised networks at paper256 sizes; speed does not depend
// on the weights. The W statistics pass before the first step is timed on its own.
import type { Command } from 'commander';
import {
  type ArchitectureFlags,
  addArchitectureOptions,
  parseArchitecture,
  positiveInt,
} from '../cli/options.ts';
import { initBackend } from '../model/backend.ts';
import { defaultDiscriminatorConfig, defaultGeneratorConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Discriminator } from '../model/networks/discriminator.ts';
import { Generator } from '../model/networks/generator.ts';
import { disposeParams } from '../model/params.ts';
import { tf } from '../model/tf.ts';
import { type ProjectOptions, project, wStatistics } from '../pipelines/projection.ts';
import { machineDescription, markdownTable, today } from './common.ts';

interface ProjectBenchOptions extends ArchitectureFlags {
  backend: string;
  res: string;
  steps: string;
}

interface Variant {
  label: string;
  options: (D: Discriminator) => ProjectOptions;
}

const VARIANTS: Variant[] = [
  { label: 'W+, pixel loss', options: () => ({ optimizeNoise: false, perceptual: null }) },
  { label: 'W+, pixel + noise', options: () => ({ optimizeNoise: true, perceptual: null }) },
  {
    label: 'W+, pixel + noise + D features (toonify default)',
    options: (D) => ({ optimizeNoise: true, perceptual: { discriminator: D } }),
  },
];

/** Steps per second after the first step (which includes kernel compilation on webgpu). */
async function stepsPerSecond(
  G: Generator,
  target: tf.Tensor4D,
  steps: number,
  options: ProjectOptions,
): Promise<number> {
  let firstDone = 0;
  let lastDone = 0;
  const result = await project(G, target, {
    ...options,
    steps: steps + 1,
    // The statistics are measured separately; a handful of samples keeps them out of this timing.
    wAvgSamples: 16,
    onProgress: ({ step }) => {
      const now = performance.now();
      if (step === 1) firstDone = now;
      lastDone = now;
    },
    previewEvery: steps + 1,
  });
  tf.dispose([result.ws, ...(result.noise?.values() ?? [])]);
  return (steps * 1000) / (lastDone - firstDone);
}

export function register(bench: Command): void {
  const command = bench
    .command('project')
    .description('projection (toonify) steps per second, paper256-size networks')
    .option('--backend <name>', 'backend', process.env.FACESTYLE_BACKEND ?? 'auto')
    .option('--res <n>', 'resolution', '256')
    .option('--steps <n>', 'timed steps per variant (after one untimed step)', '10');
  addArchitectureOptions(command).action(async (opts: ProjectBenchOptions) => {
    // `facestyle --backend X bench ...` and `bench project --backend X` both reach here: the root
    // command claims the flag wherever it appears.
    const info = await initBackend((bench.parent?.opts().backend as string | undefined) ?? opts.backend);
    const resolution = positiveInt('--res', opts.res);
    const sizes = { resolution, ...parseArchitecture(opts) };
    const gCfg = defaultGeneratorConfig(sizes);
    const dCfg = defaultDiscriminatorConfig({
      resolution,
      channelBase: sizes.channelBase,
      channelMax: sizes.channelMax,
    });
    const gParams = initParams(Generator.specs(gCfg), 1);
    const dParams = initParams(Discriminator.specs(dCfg), 2);
    const G = new Generator(gCfg, gParams);
    const D = new Discriminator(dCfg, dParams);
    const target = tf.tidy(() =>
      tf.clipByValue(G.generate(tf.randomNormal([1, gCfg.zDim], 0, 1, 'float32', 7)), -1, 1),
    );
    const steps = positiveInt('--steps', opts.steps);
    const rows: Array<Array<string | number>> = [];
    const label = `${resolution} (base ${gCfg.channelBase}, max ${gCfg.channelMax})`;

    const statsStart = performance.now();
    await wStatistics(G, 10_000);
    const statsSeconds = (performance.now() - statsStart) / 1000;
    rows.push([
      today(),
      info.name,
      label,
      'W statistics, 10k z (once per projection)',
      `${statsSeconds.toFixed(2)} s`,
    ]);
    process.stderr.write(`W statistics: ${statsSeconds.toFixed(2)} s\n`);

    for (const variant of VARIANTS) {
      const rate = await stepsPerSecond(G, target, steps, variant.options(D));
      const speed = `${rate.toPrecision(3)} steps/s (${(1 / rate).toPrecision(3)} s/step)`;
      rows.push([today(), info.name, label, variant.label, speed]);
      process.stderr.write(`${variant.label}: ${speed}\n`);
    }
    target.dispose();
    disposeParams(gParams);
    disposeParams(dParams);
    process.stdout.write(
      `Machine: ${machineDescription(info)}\n\n${markdownTable(['date', 'backend', 'resolution / sizes', 'what', 'speed'], rows)}\n`,
    );
  });
}
