// /queue: the member's own jobs (place in line, ETA, progress) and how busy the queue is.
import { EmbedBuilder, InteractionContextType, SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../command.ts';
import { Colors, describeJob, etaLine, progressBar } from '../replies.ts';

const SHOWN_JOBS = 10;

export const queue: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('queue')
    .setDescription('Your queued and running jobs, with their ETA')
    .setContexts(InteractionContextType.Guild),
  visibility: 'ephemeral',
  async execute(interaction, ctx) {
    await ctx.respond.defer('ephemeral');
    const [mine, stats] = await Promise.all([
      ctx.services.jobs.list({
        userId: interaction.user.id,
        status: ['queued', 'running'],
        limit: SHOWN_JOBS,
      }),
      ctx.services.jobs.stats(),
    ]);
    const now = Date.now();
    const lines = mine.map((job) => {
      const where =
        job.status === 'running'
          ? `running: ${job.progress?.stage ?? 'starting'} ${progressBar(job.progress?.fraction ?? 0, 10)}`
          : `position ${job.position ?? '?'}`;
      return `\`${job.id}\` ${describeJob(job)}\n${where} · ${etaLine(job.etaSeconds, now)}`;
    });
    const { short, long } = stats.lanes;
    const embed = new EmbedBuilder()
      .setColor(Colors.queued)
      .setTitle(mine.length ? `Your jobs (${mine.length})` : 'You have no jobs waiting or running')
      .setDescription(
        lines.length
          ? `${lines.join('\n\n')}\n\nCancel one with \`/cancel job:<id>\`.`
          : 'Start one with `/generate`.',
      )
      .addFields(
        {
          name: 'Images and blends',
          value: `${short.queued} waiting, ${short.running} running`,
          inline: true,
        },
        { name: 'Fine-tunes', value: `${long.queued} waiting, ${long.running} running`, inline: true },
      );
    await ctx.respond.send({ embeds: [embed] });
  },
};
