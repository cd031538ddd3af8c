import type { Command } from 'commander';

type CommandModule = { register(program: Command): void };

/**
 * Every CLI command by name, loaded on demand: a run imports only the module of the command it
 * runs (model commands pull in TensorFlow.js, the bot pulls in discord.js). Add new commands here.
 */
export const commandModules: Record<string, () => Promise<CommandModule>> = {
  generate: () => import('./generate.ts'),
  blend: () => import('./blend.ts'),
  grid: () => import('./grid.ts'),
  toonify: () => import('./toonify.ts'),
  finetune: () => import('./finetune.ts'),
  score: () => import('./score.ts'),
  models: () => import('./models.ts'),
  dataset: () => import('./dataset.ts'),
  import: () => import('./import.ts'),
  export: () => import('./export.ts'),
  bench: () => import('./bench.ts'),
  jobs: () => import('./jobs.ts'),
  worker: () => import('./worker.ts'),
  bot: () => import('./bot.ts'),
  register: () => import('./register.ts'),
  start: () => import('./start.ts'),
  demo: () => import('./demo.ts'),
};
