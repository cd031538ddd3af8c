// `npm run bench -- generate`: generator throughput (images/s) per backend and batch size, at
// paper256 sizes by default (randomly initialised: speed does not depend on the weights).
import type { Command } from 'commander';
import { type BackendName, initBackend } from '../model/backend.ts';
import { defaultGeneratorConfig, type GeneratorConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Generator } from '../model/networks/generator.ts';
import { upConvMethod } from '../model/ops/conv.ts';
import { disposeParams } from '../model/params.ts';
import { imagesPerPass } from '../model/sampling.ts';
import { tf } from '../model/tf.ts';
import { machineDescription, markdownTable, timeIt, today } from './common.ts';

export interface GenerateBenchOptions {
  backend?: string;
  res: string;
  batches: string;
  channelBase: string;
  channelMax: string;
  mappingLayers: string;
  seconds: string;
  warmup: string;
  minIters: string;
  /** Comma-separated up-conv methods to compare in this one run (FACESTYLE_UP_CONV per method). */
  upConv: string;
}

export async function benchGenerate(opts: GenerateBenchOptions): Promise<string> {
  const info = await initBackend(opts.backend as BackendName | undefined);
  const cfg: GeneratorConfig = defaultGeneratorConfig({
    resolution: Number(opts.res),
    channelBase: Number(opts.channelBase),
    channelMax: Number(opts.channelMax),
    mappingLayers: Number(opts.mappingLayers),
  });
  const params = initParams(Generator.specs(cfg), 1);
  const G = new Generator(cfg, params);
  const rows: Array<Array<string | number>> = [];
  const methods = opts.upConv.split(',').map((m) => m.trim());
  const previous = process.env.FACESTYLE_UP_CONV;
  try {
    for (const method of methods) {
      process.env.FACESTYLE_UP_CONV = method;
      upConvMethod(); // rejects an unknown method before any timing
      for (const batch of opts.batches.split(',').map(Number)) {
        rows.push(await timeBatch(G, cfg, batch, opts, info.name, method));
      }
    }
  } finally {
    if (previous === undefined) delete process.env.FACESTYLE_UP_CONV;
    else process.env.FACESTYLE_UP_CONV = previous;
  }
  disposeParams(params);
  const table = markdownTable(
    ['date', 'backend', 'resolution / sizes', 'up-conv', 'batch', 'images/s', 'iterations'],
    rows,
  );
  return `Machine: ${machineDescription(info)}\n\n${table}\n`;
}

async function timeBatch(
  G: Generator,
  cfg: GeneratorConfig,
  batch: number,
  opts: GenerateBenchOptions,
  backend: string,
  method: string,
): Promise<Array<string | number>> {
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
    { minSeconds: Number(opts.seconds), warmup: Number(opts.warmup), minIters: Number(opts.minIters) },
  );
  tf.dispose(zs);
  const row = [
    today(),
    backend,
    `${cfg.resolution} (base ${cfg.channelBase}, max ${cfg.channelMax}, map ${cfg.mappingLayers})`,
    method,
    perPass < batch ? `${batch} (${zs.length} passes of ${perPass})` : batch,
    (perSecond * batch).toPrecision(3),
    iters,
  ];
  process.stderr.write(`${method}, batch ${batch}: ${(perSecond * batch).toPrecision(3)} images/s\n`);
  return row;
}

export function register(bench: Command): void {
  bench
    .command('generate')
    .description('generator throughput (images/s) at paper256 sizes, batch 1, 8, 32')
    .option('--res <n>', 'resolution', '256')
    .option('--batches <list>', 'comma-separated batch sizes', '1,8,32')
    .option('--channel-base <n>', 'channel_base', '16384')
    .option('--channel-max <n>', 'channel_max', '512')
    .option('--mapping-layers <n>', 'mapping layers', '8')
    .option('--seconds <n>', 'minimum timed seconds per batch size', '10')
    .option('--warmup <n>', 'untimed warm-up passes (shader compilation, allocation)', '2')
    .option('--min-iters <n>', 'minimum timed passes', '3')
    .option(
      '--up-conv <list>',
      'up-conv methods to compare: transposed (official), polyphase (before #14)',
      'transposed',
    )
    .action(async (opts: Omit<GenerateBenchOptions, 'backend'>, cmd: Command) => {
      // --backend is the program's global option (facestyle --backend / FACESTYLE_BACKEND).
      process.stdout.write(await benchGenerate({ ...opts, backend: cmd.optsWithGlobals().backend }));
    });
}
