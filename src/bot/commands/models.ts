// /models: the models members can use, grouped by kind, with the snapshots /blend can take.
import { EmbedBuilder, InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { formatKid } from '../../pipelines/score/best.ts';
import type { SlashCommand } from '../command.ts';
import { Colors, truncate } from '../replies.ts';
import type { ModelKind, ModelSummary } from '../services.ts';

const GROUPS: Array<{ kind: ModelKind; title: string }> = [
  { kind: 'base', title: 'Base models' },
  { kind: 'finetuned', title: 'Fine-tunes (use with /blend)' },
  { kind: 'blend', title: 'Blends' },
];
// Discord's limit on an embed field value.
const FIELD_MAX = 1024;

function line(model: ModelSummary, isDefault: boolean): string {
  const details = [`${model.resolution}px`];
  if (model.parent) details.push(`from ${model.parent}`);
  // Only fine-tunes have snapshots to pick with /blend; a base model's training epoch means nothing here.
  if (model.kind === 'finetuned' && model.snapshots?.length)
    details.push(`epoch${model.snapshots.length === 1 ? '' : 's'} ${model.snapshots.join(', ')}`);
  if (model.score) {
    const kid = `${model.score.metric} ${formatKid(model.score.kid)}`;
    details.push(model.bestEpoch !== undefined ? `best epoch ${model.bestEpoch} (${kid})` : kid);
  }
  const description = model.description ? ` — ${model.description}` : '';
  return `**${model.name}**${isDefault ? ' (default)' : ''} · ${details.join(' · ')}${description}`;
}

export const models: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('models')
    .setDescription('The models you can generate and blend with')
    .setContexts(InteractionContextType.Guild),
  visibility: 'ephemeral',
  async execute(_interaction, ctx) {
    await ctx.respond.defer('ephemeral');
    const [all, defaultName] = await Promise.all([
      ctx.services.models.list(),
      ctx.services.models.defaultModel(),
    ]);
    const embed = new EmbedBuilder().setColor(Colors.queued).setTitle(`Models (${all.length})`);
    if (!all.length)
      embed.setDescription('No model is installed yet. An admin can add checkpoints (see /help).');
    for (const group of GROUPS) {
      const members = all.filter((m) => m.kind === group.kind);
      if (members.length) {
        embed.addFields({
          name: group.title,
          value: truncate(members.map((m) => line(m, m.name === defaultName)).join('\n'), FIELD_MAX),
        });
      }
    }
    await ctx.respond.send({ embeds: [embed] });
  },
};
