// `npm run bench -- generate-e2e`: one /generate of 4 faces answered end to end (fake Discord, the
// real bot, embedded queue, forked worker, CPU) from an imported-size model (256x256 paper256,
// random weights), once per image engine. The worker is warmed by one job first (bench bot does), so
// each figure is a running bot's answer time, not its start.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../errors.ts';
import { initBackend } from '../model/backend.ts';
import { saveCheckpoint } from '../model/checkpoint/io.ts';
import { defaultGeneratorConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Generator } from '../model/networks/generator.ts';
import { disposeParams } from '../model/params.ts';
import { measureBotBurst } from './bot.ts';
import { machineDescription, markdownTable, today } from './common.ts';

const ENGINES = ['tfjs', 'onnx'] as const;

export function register(bench: Command): void {
  bench
    .command('generate-e2e')
    .description('/generate of 4 faces end to end (fake Discord, embedded queue, forked worker) per engine')
    .option('--engine <list>', 'engines to compare, in order', 'tfjs,onnx')
    .option('--res <n>', 'resolution (paper256 channel sizes)', '256')
    .action(async (opts: { engine: string; res: string }, cmd: Command) => {
      const engines = opts.engine.split(',').map((e) => e.trim());
      for (const e of engines) {
        if (!ENGINES.includes(e as (typeof ENGINES)[number]))
          throw new UserError(`--engine: unknown engine "${e}" (expected tfjs, onnx)`);
      }
      const backend = cmd.optsWithGlobals().backend ?? process.env.FACESTYLE_BACKEND ?? 'wasm';
      await initBackend('cpu');
      const dir = await mkdtemp(join(tmpdir(), 'facestyle-bench-e2e-'));
      const model = join(dir, 'paper256.safetensors');
      const cfg = defaultGeneratorConfig({ resolution: Number(opts.res) });
      const params = initParams(Generator.specs(cfg), 1);
      try {
        await saveCheckpoint(model, {
          config: { G: cfg },
          meta: { name: 'paper256-random', kind: 'import', createdAt: new Date().toISOString() },
          G_ema: params,
        });
      } finally {
        disposeParams(params);
      }
      const rows: Array<Array<string | number>> = [];
      const saved = process.env.FACESTYLE_ENGINE;
      try {
        for (const engine of engines) {
          // The forked worker inherits this process's environment.
          process.env.FACESTYLE_ENGINE = engine;
          const result = await measureBotBurst({ interactions: 1, users: 1, backend, model });
          const t = result.timings[0];
          if (t.outcome !== 'answered')
            throw new Error(`${engine}: /generate ${t.outcome}: ${t.message ?? ''}`);
          rows.push([today(), engine, backend, cfg.resolution, 4, ((t.finalMs ?? 0) / 1000).toFixed(1)]);
          process.stderr.write(`${engine}: answered in ${((t.finalMs ?? 0) / 1000).toFixed(1)} s\n`);
        }
      } finally {
        if (saved === undefined) delete process.env.FACESTYLE_ENGINE;
        else process.env.FACESTYLE_ENGINE = saved;
        await rm(dir, { recursive: true, force: true });
      }
      const table = markdownTable(
        ['date', 'engine', 'tfjs backend', 'resolution', 'faces', 'answer s'],
        rows,
      );
      process.stdout.write(`Machine: ${machineDescription()}\n\n${table}\n`);
    });
}
