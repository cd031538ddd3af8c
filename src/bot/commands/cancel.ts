// /cancel job: stops one of the member's queued or running jobs (a server's admins may stop any job of their server).
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../command.ts';
import { describeJob } from '../replies.ts';

const MAX_CHOICES = 25;

export const cancel: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('cancel')
    .setDescription('Cancel one of your queued or running jobs')
    .setContexts(InteractionContextType.Guild)
    .addStringOption((o) =>
      o
        .setName('job')
        .setDescription('The job id (see /queue)')
        .setRequired(true)
        .setAutocomplete(true)
        .setMaxLength(40),
    ),
  visibility: 'ephemeral',
  async execute(interaction, ctx) {
    await ctx.respond.defer('ephemeral');
    const id = interaction.options.getString('job', true).trim();
    const job = await ctx.services.jobs.cancel(id, ctx.actor);
    await ctx.respond.send({ content: `Cancelled \`${job.id}\`: ${describeJob(job)}` });
  },
  async autocomplete(interaction, ctx) {
    const typed = String(interaction.options.getFocused());
    const jobs = await ctx.services.jobs.list({ userId: interaction.user.id, status: ['queued', 'running'] });
    await interaction.respond(
      jobs
        .filter((job) => job.id.includes(typed))
        .slice(0, MAX_CHOICES)
        .map((job) => ({ name: `${job.id} · ${job.kind} · ${job.status}`, value: job.id })),
    );
  },
};
