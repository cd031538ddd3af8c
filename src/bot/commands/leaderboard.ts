// /leaderboard [period]: this server's most voted results and creators.
import { EmbedBuilder, InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { plural } from '../../text.ts';
import type { SlashCommand } from '../command.ts';
import { Colors, messageLink, truncate } from '../replies.ts';

const DAY_MS = 86_400_000;
const PERIODS: Record<string, { label: string; ms: number | null }> = {
  week: { label: 'this week', ms: 7 * DAY_MS },
  month: { label: 'this month', ms: 30 * DAY_MS },
  all: { label: 'of all time', ms: null },
};
const MEDALS = ['🥇', '🥈', '🥉'];
const SHOWN = 10;

export const leaderboard: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('leaderboard')
    .setDescription("This server's most voted results")
    .setContexts(InteractionContextType.Guild)
    .addStringOption((o) =>
      o
        .setName('period')
        .setDescription('Which results count (default: this week)')
        .addChoices(
          { name: 'this week', value: 'week' },
          { name: 'last 30 days', value: 'month' },
          { name: 'all time', value: 'all' },
        ),
    ),
  visibility: 'public',
  async execute(interaction, ctx) {
    const guildId = interaction.guildId!;
    const period = PERIODS[interaction.options.getString('period') ?? 'week'];
    const since = period.ms === null ? 0 : Date.now() - period.ms;
    const votes = ctx.services.votes;
    const results = votes.topResults(guildId, { since, limit: SHOWN });
    const creators = votes.topCreators(guildId, { since, limit: 5 });
    const embed = new EmbedBuilder().setColor(Colors.done).setTitle(`🏆 Leaderboard ${period.label}`);
    if (!results.length) {
      embed.setDescription('No votes yet. Vote with 👍 under results from /generate and /blend.');
    } else {
      embed.setDescription(
        truncate(
          results
            .map((r, i) => {
              const link = r.messageId
                ? ` · [view](${messageLink(r.guildId, r.channelId, r.messageId)})`
                : '';
              return `${MEDALS[i] ?? `**${i + 1}.**`} ${plural(r.votes, 'vote')} · ${r.title} · <@${r.authorId}>${link}`;
            })
            .join('\n'),
          4096,
        ),
      );
      embed.addFields({
        name: 'Top creators',
        value: creators
          .map(
            (c, i) =>
              `${i + 1}. <@${c.authorId}>: ${plural(c.votes, 'vote')} on ${plural(c.results, 'result')}`,
          )
          .join('\n'),
      });
    }
    await ctx.respond.send({ embeds: [embed], allowedMentions: { parse: [] } });
  },
};
