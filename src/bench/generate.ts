// `npm run bench -- generate`: generator throughput (images/s) per backend and batch size, at
// paper256 sizes by default (randomly initialised: speed does not depend on the weights).
import type { Command } from 'commander';
import {
  type ArchitectureFlags,
  addArchitectureOptions,
  parseArchitecture,
  parseNumber,
  positiveInt,
} from '../cli/options.ts';
import { type BackendName, initBackend } from '../model/backend.ts';
import { defaultGeneratorConfig, type GeneratorConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Generator } from '../model/networks/generator.ts';
import { disposeParams } from '../model/params.ts';
import { imagesPerPass } from '../model/sampling.ts';
import { tf } from '../model/tf.ts';
import { machineDescription, markdownTable, timeIt, today } from './common.ts';

export interface GenerateBenchOptions extends ArchitectureFlags {
  backend?: string;
  res: string;
  batches: string;
  seconds: string;
  warmup: string;
  minIters: string;
}

export async function benchGenerate(opts: GenerateBenchOptions): Promise<string> {
  const info = await initBackend(opts.backend as BackendName | undefined);
  const cfg: GeneratorConfig = defaultGeneratorConfig({
    resolution: positiveInt('--res', opts.res),
    ...parseArchitecture(opts),
  });
  const params = initParams(Generator.specs(cfg), 1);
  const G = new Generator(cfg, params);
  const rows: Array<Array<string | number>> = [];
  for (const batch of opts.batches.split(',').map((b) => positiveInt('--batches', b))) {
    // Where one pass of `batch` would not fit (wasm's heap), the batch runs in passes, as the worker does.
    const perPass = imagesPerPass(cfg, batch);
    const zs = Array.from({ length: Math.ceil(batch / perPass) }, (_, i) =>
      tf.randomNormal([Math.min(perPass, batch - i * perPass), cfg.zDim]),
    ) as tf.Tensor2D[];
    const { perSecond, iters } = await timeIt(
      async () => {
        for (const z of zs) {
          const img = G.generate(z, { noiseMode: 'const' });
          await img.data();
          img.dispose();
        }
      },
      {
        minSeconds: parseNumber('--seconds', opts.seconds),
        warmup: parseNumber('--warmup', opts.warmup, { integer: true }),
        minIters: positiveInt('--min-iters', opts.minIters),
      },
    );
    tf.dispose(zs);
    const row = [
      today(),
      info.name,
      `${cfg.resolution} (base ${cfg.channelBase}, max ${cfg.channelMax}, map ${cfg.mappingLayers})`,
      perPass < batch ? `${batch} (${zs.length} passes of ${perPass})` : batch,
      (perSecond * batch).toFixed(2),
      iters,
    ];
    rows.push(row);
    process.stderr.write(`batch ${batch}: ${(perSecond * batch).toFixed(2)} images/s\n`);
  }
  disposeParams(params);
  const table = markdownTable(
    ['date', 'backend', 'resolution / sizes', 'batch', 'images/s', 'iterations'],
    rows,
  );
  return `Machine: ${machineDescription(info)}\n\n${table}\n`;
}

export function register(bench: Command): void {
  const command = bench
    .command('generate')
    .description('generator throughput (images/s) at paper256 sizes, batch 1, 8, 32')
    .option('--res <n>', 'resolution', '256')
    .option('--batches <list>', 'comma-separated batch sizes', '1,8,32')
    .option('--seconds <n>', 'minimum timed seconds per batch size', '10')
    .option('--warmup <n>', 'untimed warm-up passes (shader compilation, allocation)', '2')
    .option('--min-iters <n>', 'minimum timed passes', '3');
  addArchitectureOptions(command).action(
    async (opts: Omit<GenerateBenchOptions, 'backend'>, cmd: Command) => {
      // --backend is the program's global option (facestyle --backend / FACESTYLE_BACKEND).
      process.stdout.write(await benchGenerate({ ...opts, backend: cmd.optsWithGlobals().backend }));
    },
  );
}
