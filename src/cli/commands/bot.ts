// `facestyle bot`: runs the Discord bot until SIGINT/SIGTERM. With the embedded queue the bot
// forks its own worker; with FACESTYLE_QUEUE_URL it uses the Redis queue and `facestyle worker`s.
// The bot's modules are imported when the command runs, so other commands do not load discord.js.
import { join } from 'node:path';
import type { Command } from 'commander';
import { logger } from '../../log.ts';

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolveSignal) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolveSignal(signal));
  });
}

export async function runBot(): Promise<void> {
  const [
    { loadBotConfig },
    { FacestyleBot },
    { VoteStore },
    { RegistryModelCatalog },
    { QueuedDatasetIntake },
  ] = await Promise.all([
    import('../../bot/config.ts'),
    import('../../bot/client.ts'),
    import('../../store/votes.ts'),
    import('../../bot/catalog.ts'),
    import('../../bot/datasets.ts'),
  ]);
  const config = loadBotConfig();
  const [{ jobConfigFromEnv }, { createJobQueue }, { ModelRegistry, modelDirs }] = await Promise.all([
    import('../../jobs/config.ts'),
    import('../../jobs/create.ts'),
    import('../../pipelines/registry.ts'),
  ]);
  const log = logger('bot');
  const queue = await createJobQueue({ config: { ...jobConfigFromEnv(), dataDir: config.dataDir } });
  const votes = VoteStore.open(join(config.dataDir, 'votes.sqlite'));
  const runsDir = join(config.dataDir, 'runs');
  const registry = new ModelRegistry(modelDirs(config.dataDir));
  const bot = new FacestyleBot({
    config,
    services: {
      jobs: queue,
      models: new RegistryModelCatalog(registry, runsDir, process.env.FACESTYLE_DEFAULT_MODEL || undefined),
      datasets: new QueuedDatasetIntake(queue, join(config.dataDir, 'datasets'), config.minDatasetImages),
      votes,
    },
  });
  try {
    await bot.start();
    log.info('stopping', { signal: await untilSignal() });
  } finally {
    await bot.stop();
    await queue.close();
    votes.close();
  }
}

export function register(program: Command): void {
  program
    .command('bot')
    .description('run the Discord bot (needs DISCORD_TOKEN and DISCORD_APPLICATION_ID)')
    .action(runBot);
}
