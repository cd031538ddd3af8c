// Queues a job for an interaction and shows its live status in the interaction's public reply.
import type { ButtonInteraction, ChatInputCommandInteraction } from 'discord.js';
import type { JobKind, JobKinds, PayloadOf } from '../jobs/kinds.ts';
import type { InteractionContext } from './command.ts';
import { InteractionReplyTarget } from './tracker.ts';

/** The job's caller context: where its messages go after the interaction token ran out. */
export function jobMeta(
  interaction: ChatInputCommandInteraction | ButtonInteraction,
): Record<string, string> {
  return {
    guildId: interaction.guildId ?? '',
    channelId: interaction.channelId ?? '',
    interactionId: interaction.id,
  };
}

export async function submitAndShow<K extends JobKind>(
  interaction: ChatInputCommandInteraction | ButtonInteraction,
  ctx: InteractionContext,
  kind: K,
  payload: PayloadOf<JobKinds, K>,
  /** Extra job meta, e.g. `snapshotNote`: which snapshot a /blend picked by itself, shown with the job. */
  extraMeta: Record<string, string> = {},
): Promise<void> {
  await ctx.respond.defer('public');
  const job = await ctx.services.jobs.submit({
    kind,
    payload,
    actor: { userId: interaction.user.id, isAdmin: ctx.isAdmin },
    meta: { ...jobMeta(interaction), ...extraMeta },
  });
  await ctx.tracker.watch(job, new InteractionReplyTarget(ctx.respond, ctx.client, ctx.tokenLifetimeMs));
}
