import type { Command } from 'commander';
import { register as bench } from './bench.ts';
import { register as blend } from './blend.ts';
import { register as bot } from './bot.ts';
import { register as dataset } from './dataset.ts';
import { register as exportCommand } from './export.ts';
import { register as finetune } from './finetune.ts';
import { register as generate } from './generate.ts';
import { register as grid } from './grid.ts';
import { register as importCommand } from './import.ts';
import { register as jobs } from './jobs.ts';
import { register as registerCommands } from './register.ts';
import { register as worker } from './worker.ts';

/** Every CLI command module's `register`; add new commands here. */
export const commands: Array<(program: Command) => void> = [
  generate,
  blend,
  grid,
  finetune,
  bench,
  dataset,
  jobs,
  worker,
  bot,
  registerCommands,
  importCommand,
  exportCommand,
];
