// /contest [channel] [enabled]: admins choose where this server's contest announcements go, or turn
// them off; without options it shows the current settings and the next announcement.
import {
  ChannelType,
  EmbedBuilder,
  InteractionContextType,
  MessageFlags,
  PermissionFlagsBits,
  SlashCommandBuilder,
} from 'discord.js';
import { UserError } from '../../errors.ts';
import type { SlashCommand } from '../command.ts';
import { nextContestRun } from '../contest-schedule.ts';
import { Colors, discordTimestamp } from '../replies.ts';

// What the bot needs in the channel to post an announcement with images.
const CHANNEL_PERMISSIONS = [
  PermissionFlagsBits.ViewChannel,
  PermissionFlagsBits.SendMessages,
  PermissionFlagsBits.EmbedLinks,
  PermissionFlagsBits.AttachFiles,
];

export const contest: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('contest')
    .setDescription("Where this server's weekly contest results are announced")
    .setContexts(InteractionContextType.Guild)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addChannelOption((o) =>
      o
        .setName('channel')
        .setDescription('Post the announcements here (default: where the winning result was posted)')
        .addChannelTypes(ChannelType.GuildText, ChannelType.GuildAnnouncement),
    )
    .addBooleanOption((o) => o.setName('enabled').setDescription('Announce in this server at all')),
  visibility: 'ephemeral',
  adminOnly: true,
  async execute(interaction, ctx) {
    const guildId = interaction.guildId!;
    const channel = interaction.options.getChannel('channel');
    const enabled = interaction.options.getBoolean('enabled');
    const votes = ctx.services.votes;
    let settings = votes.contestSettings(guildId);
    if (channel) {
      const cached = ctx.client.channels.cache.get(channel.id);
      const permissions =
        cached && 'permissionsFor' in cached && ctx.client.user
          ? cached.permissionsFor(ctx.client.user)
          : null;
      if (permissions && !permissions.has(CHANNEL_PERMISSIONS)) {
        throw new UserError(
          `I cannot post in <#${channel.id}>`,
          'give me View Channel, Send Messages, Embed Links and Attach Files there, or pick another channel',
        );
      }
    }
    if (channel || enabled !== null) {
      settings = votes.setContestSettings(
        guildId,
        { channelId: channel?.id, enabled: enabled ?? true },
        interaction.user.id,
      );
      ctx.log.info('contest settings changed', { guild: guildId, by: interaction.user.id, ...settings });
    }
    const on = settings?.enabled ?? true;
    const where = settings?.channelId ? `<#${settings.channelId}>` : 'the channel of the winning result';
    const next = ctx.config.contestSchedule ? nextContestRun(ctx.config.contestSchedule) : null;
    const lines = !ctx.config.contestSchedule
      ? ['The bot operator turned contests off (FACESTYLE_CONTEST_CRON=off).']
      : on
        ? [
            `The most voted results are announced in ${where}.`,
            next ? `Next announcement ${discordTimestamp(next.getTime(), 'f')}.` : '',
          ]
        : ['Announcements are off in this server: `/contest enabled:true` turns them back on.'];
    const embed = new EmbedBuilder()
      .setColor(on ? Colors.done : Colors.neutral)
      .setTitle('🏆 Contest')
      .setDescription(lines.filter(Boolean).join('\n'));
    await ctx.respond.whisper({ embeds: [embed], flags: MessageFlags.Ephemeral });
  },
};
