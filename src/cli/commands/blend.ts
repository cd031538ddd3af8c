// `facestyle blend [--base F] [--style G] --layer 16 [--width 1] [--direction texture|structure] --out blended.safetensors`
// (the default model and the style fine-tuned from it when --base or --style is left out)
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
import { baseModelFile, styleModelFile } from '../models.ts';
import { checkpointOutput, parseNumber } from '../options.ts';

interface BlendCliOptions {
  base?: string;
  style?: string;
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
    .option('--base <file>', 'base (real-face) checkpoint or model name (default: the default model)')
    .option(
      '--style <file|run>',
      'style checkpoint fine-tuned from the base, or a fine-tune run folder (its best-scored snapshot) (default: the one fine-tuned from the base)',
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
    .requiredOption('--out <file>', 'output checkpoint (.safetensors; for a picture: grid compare)')
    .action(async (opts: BlendCliOptions) => {
      const out = checkpointOutput(opts.out, 'blend');
      const direction = parseDirection(opts.direction);
      if (opts.mapping !== 'low' && opts.mapping !== 'high')
        throw new UserError(`--mapping must be low or high, got "${opts.mapping}"`);
      if (!['F32', 'F16', 'BF16'].includes(opts.dtype))
        throw new UserError(`--dtype must be F32, F16 or BF16, got "${opts.dtype}"`);
      const layer = parseNumber('--layer', opts.layer, { integer: true, min: 4 });
      const width = opts.width === undefined ? undefined : parseNumber('--width', opts.width);
      const baseFile = await baseModelFile(opts.base, '--base');
      // A run folder gives its best-scored snapshot; a file or model name is taken as it is.
      const picked = opts.style === undefined ? undefined : await pickSnapshot(opts.style);
      if (picked?.note) process.stderr.write(`--style: ${picked.note}\n`);
      const styleFile = picked?.note ? picked.path : await styleModelFile(opts.style, baseFile, '--style');
      await initBackend(program.opts().backend);
      const base = await loadImageGenerator(baseFile);
      const style = await loadImageGenerator(styleFile);
      const started = performance.now();
      const { checkpoint, owned } = blendCheckpoints(sourceOf(base), sourceOf(style), {
        layer,
        width,
        direction,
        mapping: opts.mapping,
        name: opts.name,
      });
      const blendMs = performance.now() - started;
      await saveCheckpoint(out, checkpoint, { dtype: opts.dtype as 'F32' | 'F16' | 'BF16' });
      for (const t of owned) t.dispose();
      disposeCheckpoint(base);
      disposeCheckpoint(style);
      process.stdout.write(`wrote ${out} (blend took ${blendMs.toFixed(1)} ms)\n`);
    });
}
