// The `model:` option shared by /generate, /blend and /finetune: autocompletion from the catalogue
// and a clear error naming what exists when a member types a model that does not.
import type { AutocompleteInteraction } from 'discord.js';
import { UserError } from '../../errors.ts';
import type { BotContext } from '../command.ts';
import type { ModelKind, ModelSummary } from '../services.ts';

// Discord shows at most 25 choices.
const MAX_CHOICES = 25;

export async function findModel(
  ctx: BotContext,
  name: string,
  kinds?: readonly ModelKind[],
): Promise<ModelSummary> {
  const models = (await ctx.services.models.list()).filter((m) => !kinds || kinds.includes(m.kind));
  const model = models.find((m) => m.name === name);
  if (model) return model;
  const names = models.map((m) => m.name);
  throw new UserError(
    `there is no ${kinds?.length === 1 ? `${kinds[0]} ` : ''}model called "${name}"`,
    names.length
      ? `pick one of: ${names.slice(0, 20).join(', ')} (see /models)`
      : 'no such model is installed yet; see /models',
  );
}

export async function defaultModel(ctx: BotContext): Promise<ModelSummary> {
  const name = await ctx.services.models.defaultModel();
  if (!name) throw new UserError('no model is installed yet', 'ask an admin to add a checkpoint (see /help)');
  return findModel(ctx, name);
}

export async function autocompleteModel(
  interaction: AutocompleteInteraction,
  ctx: BotContext,
  kinds?: readonly ModelKind[],
): Promise<void> {
  const typed = String(interaction.options.getFocused()).toLowerCase();
  const models = (await ctx.services.models.list()).filter(
    (m) => (!kinds || kinds.includes(m.kind)) && m.name.toLowerCase().includes(typed),
  );
  await interaction.respond(
    models
      .slice(0, MAX_CHOICES)
      .map((m) => ({ name: `${m.name} (${m.kind}, ${m.resolution}px)`.slice(0, 100), value: m.name })),
  );
}
