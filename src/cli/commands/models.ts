// `facestyle models [--data-dir DIR]`: the models the bot and the worker would find (checkpoints/,
// DIR/models, DIR/runs), one line each, with each fine-tune's snapshots, best epoch and score.
import type { Command } from 'commander';
import { ModelRegistry, modelDirs } from '../../pipelines/registry.ts';
import { bestScored, formatScore } from '../../pipelines/score/best.ts';

export function register(program: Command): void {
  program
    .command('models')
    .description('list the installed models with their snapshots and quality scores (KID, lower is better)')
    .option('--data-dir <dir>', 'data folder (FACESTYLE_DATA_DIR)', process.env.FACESTYLE_DATA_DIR ?? 'data')
    .action(async (opts: { dataDir: string }) => {
      const registry = new ModelRegistry(modelDirs(opts.dataDir));
      const entries = await registry.refresh(true);
      const lines: string[] = [];
      for (const model of await registry.models()) {
        const snapshots = entries.filter((e) => e.name === model.name && e.epoch !== undefined);
        // "Best epoch" only means something among several snapshots of one run.
        const best = snapshots.length > 1 ? bestScored(snapshots) : undefined;
        const details = [model.kind, `${model.resolution}px`];
        if (model.parent) details.push(`from ${model.parent}`);
        if (snapshots.length > 1 || model.kind === 'finetune')
          details.push(`epochs ${snapshots.map((s) => s.epoch).join(', ')}`);
        if (best?.score) details.push(`best epoch ${best.epoch}: ${formatScore(best.score)}`);
        else if (model.score) details.push(formatScore(model.score));
        else details.push('not scored');
        lines.push(`${model.name}  ${details.join(' · ')}\n  ${(best ?? model).path}`);
      }
      process.stdout.write(lines.length ? `${lines.join('\n')}\n` : 'no models found\n');
    });
}
