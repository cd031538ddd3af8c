// /help: what each command does and how to start, built from the registered commands themselves.
import { EmbedBuilder, InteractionContextType, MessageFlags, SlashCommandBuilder } from 'discord.js';
import type { SlashCommand } from '../command.ts';
import { Colors } from '../replies.ts';

interface OptionJson {
  name: string;
  required?: boolean;
}

function usage(command: SlashCommand): string {
  const options = (command.data.toJSON().options ?? []) as OptionJson[];
  const parts = options.map((o) => (o.required ? `${o.name}:` : `[${o.name}]`));
  return `\`/${command.data.name}${parts.length ? ` ${parts.join(' ')}` : ''}\``;
}

export const help: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('help')
    .setDescription('What this bot does and how to use it')
    .setContexts(InteractionContextType.Guild),
  visibility: 'ephemeral',
  async execute(_interaction, ctx) {
    const lines = ctx.commands
      .filter((c) => !c.adminOnly || ctx.isAdmin)
      .map((c) => `${usage(c)}${c.adminOnly ? ' *(admins)*' : ''}\n${c.data.description}`);
    const embed = new EmbedBuilder()
      .setColor(Colors.queued)
      .setTitle('facestyle: StyleGAN2 faces in chat')
      .setDescription(
        [
          'Start with `/generate`: the same seed always gives the same face. Press 🎲 to reroll and 👍 to vote; the best results reach `/leaderboard`.',
          '',
          ...lines,
        ].join('\n'),
      )
      .setFooter({ text: 'Options in [brackets] are optional. Jobs wait in a queue: /queue shows yours.' });
    await ctx.respond.whisper({ embeds: [embed], flags: MessageFlags.Ephemeral });
  },
};
