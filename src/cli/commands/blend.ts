// `facestyle blend --base F --style G --layer 64 [--width 1] [--direction texture|structure] --out blended.safetensors`
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { initBackend } from '../../model/backend.ts';
import {
  type Checkpoint,
  disposeCheckpoint,
  generatorParams,
  loadImageGenerator,
  saveCheckpoint,
} from '../../model/checkpoint/io.ts';
import { type BlendDirection, blendCheckpoints } from '../../pipelines/blend.ts';
import { pickSnapshot } from '../../pipelines/score/pick.ts';

interface BlendCliOptions {
  base: string;
  style: string;
  layer: string;
  width?: string;
  direction: string;
  mapping: string;
  name?: string;
  dtype: string;
  out: string;
}

export function parseDirection(value: string): BlendDirection {
  if (value !== 'texture' && value !== 'structure')
    throw new UserError(`direction must be "texture" or "structure", got "${value}"`);
  return value;
}

export function sourceOf(ckpt: Checkpoint) {
  return { path: ckpt.path, config: ckpt.config, meta: ckpt.meta, params: generatorParams(ckpt) };
}

export function register(program: Command): void {
  program
    .command('blend')
    .description('layer-swap a style model into a base model and save the result as a checkpoint')
    .requiredOption('--base <file>', 'base (real-face) checkpoint')
    .requiredOption(
      '--style <file|run>',
      'style checkpoint fine-tuned from the base, or a fine-tune run folder (its best-scored snapshot)',
    )
    .requiredOption('--layer <res>', 'swap resolution: blocks at resolution >= this come from the high model')
    .option('--width <octaves>', 'soft switch width (0 = hard cut)')
    .option(
      '--direction <dir>',
      'texture (base structure, style colour) | structure (style shapes, base texture)',
      'texture',
    )
    .option('--mapping <which>', 'mapping network and w_avg from the low or high model', 'low')
    .option('--name <name>', 'name recorded in the checkpoint')
    .option('--dtype <type>', 'storage type F32 | F16 | BF16', 'F32')
    .requiredOption('--out <file>', 'output checkpoint (.safetensors)')
    .action(async (opts: BlendCliOptions) => {
      await initBackend(program.opts().backend);
      const direction = parseDirection(opts.direction);
      if (opts.mapping !== 'low' && opts.mapping !== 'high')
        throw new UserError(`--mapping must be low or high, got "${opts.mapping}"`);
      const base = await loadImageGenerator(opts.base);
      const picked = await pickSnapshot(opts.style);
      if (picked.note) process.stderr.write(`style: ${picked.note}\n`);
      const style = await loadImageGenerator(picked.path);
      const started = performance.now();
      const { checkpoint, owned } = blendCheckpoints(sourceOf(base), sourceOf(style), {
        layer: Number(opts.layer),
        width: opts.width === undefined ? undefined : Number(opts.width),
        direction,
        mapping: opts.mapping,
        name: opts.name,
      });
      const blendMs = performance.now() - started;
      await saveCheckpoint(opts.out, checkpoint, { dtype: opts.dtype as 'F32' | 'F16' | 'BF16' });
      for (const t of owned) t.dispose();
      disposeCheckpoint(base);
      disposeCheckpoint(style);
      process.stdout.write(`wrote ${opts.out} (blend took ${blendMs.toFixed(1)} ms)\n`);
    });
}
