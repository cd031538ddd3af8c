// Queues a job for an interaction and shows its live status in the interaction's public reply.
import type { ButtonInteraction, ChatInputCommandInteraction } from 'discord.js';
import type { JobKind, JobKinds, PayloadOf } from '../jobs/kinds.ts';
import type { InteractionContext } from './command.ts';
import { checkCooldown } from './cooldowns.ts';
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
  /**
   * More of the job's caller context: model names for display, the result a reroll comes from,
   * `snapshotNote` (which snapshot a /blend picked by itself, shown with the job).
   */
  extraMeta: Record<string, string> = {},
): Promise<void> {
  checkCooldown(ctx, interaction.user.id, kind);
  await ctx.respond.defer('public');
  const job = await ctx.services.jobs.submit({
    kind,
    payload,
    actor: ctx.actor,
    meta: { ...jobMeta(interaction), ...extraMeta },
  });
  ctx.cooldowns.record(interaction.user.id, kind);
  await ctx.tracker.watch(job, new InteractionReplyTarget(ctx.respond, ctx.client, ctx.tokenLifetimeMs), {
    queuedGraceMs: ctx.queuedGraceMs,
  });
}
