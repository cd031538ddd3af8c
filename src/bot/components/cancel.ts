// cancel:<jobId>: the cancel button under a job's live status; its owner or an admin of
// the job's server may press it.
import type { ButtonHandler } from '../command.ts';
import { notice } from '../replies.ts';
import { ButtonAction } from './ids.ts';

export const cancelJob: ButtonHandler = {
  action: ButtonAction.Cancel,
  acknowledgement: 'ephemeral',
  async execute(_interaction, jobId, ctx) {
    // Cancelling a running job waits for its worker to stop, which can take seconds.
    await ctx.respond.defer('ephemeral');
    const job = await ctx.services.jobs.cancel(jobId, ctx.actor);
    await ctx.respond.whisper(notice(`Cancelled \`${job.id}\`.`));
  },
};
