// `npm run bench -- blend`: time to blend two paper256-size generators (hard cut and soft switch),
// in memory, and through checkpoint files as the CLI does it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { positiveInt } from '../cli/options.ts';
import { initBackend } from '../model/backend.ts';
import { generatorParams, loadImageGenerator, saveCheckpoint } from '../model/checkpoint/io.ts';
import { defaultGeneratorConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Generator } from '../model/networks/generator.ts';
import { tf } from '../model/tf.ts';
import { blend, blendCheckpoints } from '../pipelines/blend.ts';
import { machineDescription, markdownTable, today } from './common.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function register(bench: Command): void {
  bench
    .command('blend')
    .description('blend time for two 256x256 paper256-size generators')
    .option('--res <n>', 'resolution', '256')
    .option('--repeats <n>', 'repeats per measurement', '20')
    .action(async (opts: { res: string; repeats: string }, cmd: Command) => {
      const info = await initBackend(cmd.optsWithGlobals().backend);
      const cfg = defaultGeneratorConfig({ resolution: positiveInt('--res', opts.res) });
      const a = initParams(Generator.specs(cfg), 1);
      const b = initParams(Generator.specs(cfg), 2);
      const repeats = positiveInt('--repeats', opts.repeats);
      const time = (f: () => void) => {
        const ms: number[] = [];
        for (let i = 0; i < repeats; i++) {
          const t0 = performance.now();
          f();
          ms.push(performance.now() - t0);
        }
        return median(ms);
      };
      const hard = time(() => blend(a, b, { layer: 64 }));
      const soft = time(() => {
        const { owned } = blend(a, b, { layer: 64, width: 1 });
        tf.dispose(owned);
      });
      const dir = await mkdtemp(join(tmpdir(), 'facestyle-bench-blend-'));
      const meta = { kind: 'base' as const, createdAt: new Date().toISOString() };
      await saveCheckpoint(join(dir, 'a.safetensors'), {
        config: { G: cfg },
        meta: { ...meta, name: 'a' },
        G_ema: a,
      });
      await saveCheckpoint(join(dir, 'b.safetensors'), {
        config: { G: cfg },
        meta: { ...meta, name: 'b' },
        G_ema: b,
      });
      const t0 = performance.now();
      const base = await loadImageGenerator(join(dir, 'a.safetensors'));
      const style = await loadImageGenerator(join(dir, 'b.safetensors'));
      const t1 = performance.now();
      const src = (c: typeof base) => ({
        path: c.path,
        config: c.config,
        meta: c.meta,
        params: generatorParams(c),
      });
      const { checkpoint } = blendCheckpoints(src(base), src(style), { layer: 64 });
      const t2 = performance.now();
      await saveCheckpoint(join(dir, 'blend.safetensors'), checkpoint);
      const t3 = performance.now();
      await rm(dir, { recursive: true, force: true });
      const params = [...a.values()].reduce((n, t) => n + t.size, 0);
      const rows = [
        [today(), info.name, `hard cut at 64 (${(params / 1e6).toFixed(1)}M params)`, hard.toFixed(3)],
        [today(), info.name, 'soft switch, width 1', soft.toFixed(1)],
        [today(), info.name, 'load both checkpoints (F32)', (t1 - t0).toFixed(0)],
        [today(), info.name, 'blendCheckpoints', (t2 - t1).toFixed(3)],
        [today(), info.name, 'save the blend (F32)', (t3 - t2).toFixed(0)],
      ];
      process.stdout.write(
        `Machine: ${machineDescription(info)}\n\n${markdownTable(['date', 'backend', 'step', 'ms (median)'], rows)}\n`,
      );
    });
}
