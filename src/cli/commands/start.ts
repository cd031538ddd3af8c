// `npm start`: with DISCORD_TOKEN the bot; without it the offline demo on the demo models.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('start')
    .description('run the bot when DISCORD_TOKEN is set, else the offline demo (writes grids to out/demo)')
    .option('--out <dir>', 'demo output folder', 'out/demo')
    .action(async (opts: { out: string }) => {
      if (process.env.DISCORD_TOKEN) {
        const { runBot } = await import('./bot.ts');
        await runBot();
        return;
      }
      process.stdout.write(
        'DISCORD_TOKEN is not set: running the offline demo (generate, blend, fine-tune) on the demo models\n',
      );
      const { runDemo } = await import('../../demo/run.ts');
      await runDemo({ outDir: opts.out });
    });
}
