// `npm run bench -- generate`: generator throughput (images/s) per engine (tfjs on its backend, ONNX
// Runtime on the CPU) and batch size, at paper256 sizes by default (randomly initialised: speed does
// not depend on the weights). Engines run one after the other in one bench run, so ratios compare
// like with like (each engine in a process of its own); peak RSS is sampled during each measurement.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import {
  type ArchitectureFlags,
  addArchitectureOptions,
  parseArchitecture,
  parseNumber,
  positiveInt,
} from '../cli/options.ts';
import { UserError } from '../errors.ts';
import { type BackendInfo, type BackendName, initBackend } from '../model/backend.ts';
import { defaultGeneratorConfig, type GeneratorConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Generator } from '../model/networks/generator.ts';
import { OnnxGenerator } from '../model/onnx/session.ts';
import { upConvMethod } from '../model/ops/conv.ts';
import { disposeParams } from '../model/params.ts';
import { imagesPerPass } from '../model/sampling.ts';
import { tf } from '../model/tf.ts';
import { machineDescription, markdownTable, timeIt, today } from './common.ts';

export interface GenerateBenchOptions extends ArchitectureFlags {
  backend?: string;
  engine: string;
  res: string;
  batches: string;
  batch?: string;
  seconds: string;
  warmup: string;
  minIters: string;
  /** Comma-separated up-conv methods to compare in this one run (tfjs engine; FACESTYLE_UP_CONV per method). */
  upConv: string;
  json?: boolean;
}

export interface GenerateBenchResult {
  engine: EngineName;
  /** tfjs: its backend; onnx: the execution provider. */
  backend: string;
  resolution: number;
  /** tfjs: the up-conv method (FACESTYLE_UP_CONV); onnx: always the official transposed conv. */
  up_conv: string;
  batch: number;
  images_per_s: number;
  peak_rss_mb: number;
  /** Process CPU time (all threads) per image: less sensitive than images/s to a busy machine. */
  cpu_s_per_image: number;
  iterations: number;
  passes: number;
}

const ENGINES = ['tfjs', 'onnx', 'onnx-webgpu'] as const;
type EngineName = (typeof ENGINES)[number];

function parseEngines(list: string): EngineName[] {
  const engines = list.split(',').map((e) => e.trim());
  for (const e of engines) {
    if (!ENGINES.includes(e as EngineName))
      throw new UserError(`--engine: unknown engine "${e}" (expected ${ENGINES.join(', ')})`);
  }
  return engines as EngineName[];
}

/** Peak resident set size while `work` runs (sampled every 20 ms and at the end), and CPU seconds. */
async function withPeakRss<T>(
  work: () => Promise<T>,
): Promise<{ result: T; peakRssMb: number; cpuSeconds: number }> {
  const cpuBefore = process.cpuUsage();
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage.rss());
    const cpu = process.cpuUsage(cpuBefore);
    return { result, peakRssMb: Math.round(peak / 2 ** 20), cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  } finally {
    clearInterval(timer);
  }
}

const BIN = fileURLToPath(new URL('../../bin/facestyle.js', import.meta.url));

/**
 * Several engines: each measured in a process of its own, one after the other, so that one's peak
 * RSS does not include what the other left allocated (tfjs's wasm heap never shrinks).
 */
async function benchEnginesApart(
  engines: EngineName[],
  opts: GenerateBenchOptions,
): Promise<GenerateBenchResult[]> {
  const results: GenerateBenchResult[] = [];
  for (const engine of engines) {
    const args = [BIN, ...(opts.backend ? ['--backend', opts.backend] : []), 'bench', 'generate'];
    args.push('--engine', engine, '--json', '--res', opts.res, '--batches', opts.batch ?? opts.batches);
    args.push('--channel-base', opts.channelBase, '--channel-max', opts.channelMax);
    args.push('--mapping-layers', opts.mappingLayers, '--z-dim', opts.zDim, '--w-dim', opts.wDim);
    args.push('--seconds', opts.seconds, '--up-conv', opts.upConv);
    args.push('--warmup', opts.warmup, '--min-iters', opts.minIters);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new Error(`bench generate --engine ${engine} exited with ${code}`);
    for (const line of stdout.split('\n').filter((l) => l.startsWith('{'))) {
      const r = JSON.parse(line) as GenerateBenchResult;
      results.push(r);
      if (opts.json) process.stdout.write(`${line}\n`);
    }
  }
  return results;
}

export async function benchGenerate(opts: GenerateBenchOptions): Promise<string> {
  const engines = parseEngines(opts.engine);
  if (engines.length > 1) {
    const results = await benchEnginesApart(engines, opts);
    return opts.json ? '' : formatResults(results, opts);
  }
  const info = await initBackend(opts.backend as BackendName | undefined);
  const cfg: GeneratorConfig = defaultGeneratorConfig({
    resolution: positiveInt('--res', opts.res),
    ...parseArchitecture(opts),
  });
  const batches = (opts.batch ?? opts.batches).split(',').map((b) => positiveInt('--batches', b));
  const timing = {
    minSeconds: parseNumber('--seconds', opts.seconds),
    warmup: parseNumber('--warmup', opts.warmup, { integer: true }),
    minIters: positiveInt('--min-iters', opts.minIters),
  };
  const upConvMethods = opts.upConv.split(',').map((m) => m.trim());
  const previousUpConv = process.env.FACESTYLE_UP_CONV;
  for (const method of upConvMethods) {
    process.env.FACESTYLE_UP_CONV = method;
    upConvMethod(); // rejects an unknown method before any timing
  }
  const params = initParams(Generator.specs(cfg), 1);
  const results: GenerateBenchResult[] = [];
  const report = (r: GenerateBenchResult) => {
    results.push(r);
    if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    process.stderr.write(
      `${r.engine} (${r.up_conv}) batch ${r.batch}: ${r.images_per_s.toPrecision(3)} images/s\n`,
    );
  };
  try {
    for (const engine of engines) {
      if (engine === 'tfjs') {
        const G = new Generator(cfg, params);
        for (const method of upConvMethods) {
          process.env.FACESTYLE_UP_CONV = method;
          for (const batch of batches) {
            // Where one pass of `batch` would not fit (wasm's heap), the batch runs in passes, as the worker does.
            const perPass = imagesPerPass(cfg, batch);
            const zs = Array.from({ length: Math.ceil(batch / perPass) }, (_, i) =>
              tf.randomNormal([Math.min(perPass, batch - i * perPass), cfg.zDim]),
            ) as tf.Tensor2D[];
            const { result, peakRssMb, cpuSeconds } = await withPeakRss(() =>
              timeIt(async () => {
                for (const z of zs) {
                  const img = G.generate(z, { noiseMode: 'const' });
                  await img.data();
                  img.dispose();
                }
              }, timing),
            );
            tf.dispose(zs);
            report({
              engine,
              backend: info.name,
              up_conv: method,
              resolution: cfg.resolution,
              batch,
              images_per_s: result.perSecond * batch,
              peak_rss_mb: peakRssMb,
              cpu_s_per_image: cpuSeconds / ((result.iters + timing.warmup) * batch),
              iterations: result.iters,
              passes: zs.length,
            });
          }
        }
      } else {
        const provider = engine === 'onnx-webgpu' ? 'webgpu' : 'cpu';
        const G = await OnnxGenerator.create(cfg, params, { provider });
        try {
          for (const batch of batches) {
            const z = (await tf.randomNormal([batch, cfg.zDim]).data()) as Float32Array;
            const { result, peakRssMb, cpuSeconds } = await withPeakRss(() =>
              timeIt(async () => {
                await G.generate(z, batch, 1, 'const');
              }, timing),
            );
            report({
              engine,
              backend: provider,
              up_conv: 'transposed',
              resolution: cfg.resolution,
              batch,
              images_per_s: result.perSecond * batch,
              peak_rss_mb: peakRssMb,
              cpu_s_per_image: cpuSeconds / ((result.iters + timing.warmup) * batch),
              iterations: result.iters,
              passes: 1,
            });
          }
        } finally {
          await G.release();
        }
      }
    }
  } finally {
    if (previousUpConv === undefined) delete process.env.FACESTYLE_UP_CONV;
    else process.env.FACESTYLE_UP_CONV = previousUpConv;
    disposeParams(params);
  }
  if (opts.json) return '';
  return formatResults(results, opts, info);
}

function formatResults(
  results: GenerateBenchResult[],
  opts: GenerateBenchOptions,
  info?: BackendInfo,
): string {
  const sizes = `${opts.res} (base ${opts.channelBase}, max ${opts.channelMax}, map ${opts.mappingLayers}, z/w ${opts.zDim})`;
  const table = markdownTable(
    [
      'date',
      'engine',
      'backend',
      'resolution / sizes',
      'up-conv',
      'batch',
      'images/s',
      'CPU s/image',
      'peak RSS MB',
      'iterations',
    ],
    results.map((r) => [
      today(),
      r.engine,
      r.backend,
      sizes,
      r.up_conv,
      r.passes > 1 ? `${r.batch} (${r.passes} passes)` : r.batch,
      r.images_per_s.toPrecision(3),
      r.cpu_s_per_image.toFixed(3),
      r.peak_rss_mb,
      r.iterations,
    ]),
  );
  return `Machine: ${machineDescription(info)}\n\n${table}\n`;
}

export function register(bench: Command): void {
  const command = bench
    .command('generate')
    .description('generator throughput (images/s) per engine at paper256 sizes, batch 1, 8, 32')
    .option(
      '--engine <list>',
      'comma-separated engines: tfjs (its --backend), onnx (ONNX Runtime CPU), onnx-webgpu',
      'tfjs',
    )
    .option('--res <n>', 'resolution', '256')
    .option('--batches <list>', 'comma-separated batch sizes', '1,8,32')
    .option('--batch <list>', 'same as --batches')
    .option('--seconds <n>', 'minimum timed seconds per batch size', '10')
    .option('--warmup <n>', 'untimed warm-up passes (shader compilation, allocation)', '2')
    .option('--min-iters <n>', 'minimum timed passes', '3')
    .option(
      '--up-conv <list>',
      'up-conv methods to compare (tfjs engine): transposed (official), polyphase (before #14)',
      'transposed',
    )
    .option('--json', 'print one JSON object per engine and batch instead of a table');
  addArchitectureOptions(command).action(
    async (opts: Omit<GenerateBenchOptions, 'backend'>, cmd: Command) => {
      // --backend is the program's global option (facestyle --backend / FACESTYLE_BACKEND).
      process.stdout.write(await benchGenerate({ ...opts, backend: cmd.optsWithGlobals().backend }));
    },
  );
}
