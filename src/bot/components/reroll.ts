// reroll:<jobId>: the same request as a finished /generate or /blend, with new random seeds.
import { UserError } from '../../errors.ts';
import type { ButtonHandler } from '../command.ts';
import { consecutiveSeeds, randomFirstSeed } from '../commands/generate.ts';
import { submitAndShow } from '../submit.ts';
import { ButtonAction } from './ids.ts';

export const reroll: ButtonHandler = {
  action: ButtonAction.Reroll,
  acknowledgement: 'public',
  async execute(interaction, jobId, ctx) {
    await ctx.respond.defer('public');
    const job = await ctx.services.jobs.get(jobId);
    if (!job) {
      throw new UserError(
        'this result is too old to reroll (its job record was cleaned up)',
        'start a new one with /generate',
      );
    }
    if (job.kind !== 'generate' && job.kind !== 'blend')
      throw new UserError(`${job.kind} jobs cannot be rerolled`);
    const seeds = consecutiveSeeds(randomFirstSeed(job.payload.seeds.length), job.payload.seeds.length);
    if (job.kind === 'generate') await submitAndShow(interaction, ctx, 'generate', { ...job.payload, seeds });
    else await submitAndShow(interaction, ctx, 'blend', { ...job.payload, seeds });
  },
};
