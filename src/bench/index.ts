import type { Command } from 'commander';
import { register as blend } from './blend.ts';
import { register as bot } from './bot.ts';
import { register as convGrad } from './conv-grad.ts';
import { register as dataset } from './dataset.ts';
import { register as generate } from './generate.ts';
import { register as generateE2e } from './generate-e2e.ts';
import { register as importBench } from './import.ts';
import { register as profile } from './profile.ts';
import { register as project } from './project.ts';
import { register as queue } from './queue.ts';
import { register as score } from './score.ts';
import { register as train } from './train.ts';

/**
 * Benchmarks, run as `npm run bench -- <name> [options]`. Each module in src/bench registers one
 * subcommand of `facestyle bench` and prints Markdown rows for docs/benchmarks.md.
 */
export const benches: Array<(bench: Command) => void> = [
  generate,
  generateE2e,
  blend,
  dataset,
  queue,
  train,
  project,
  importBench,
  bot,
  profile,
  score,
  convGrad,
];
