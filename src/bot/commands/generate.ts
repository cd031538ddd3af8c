// /generate [seed] [model] [psi] [count]: a grid of faces from consecutive seeds, with reroll and
// vote buttons once done.
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { UserError } from '../../errors.ts';
import { randomSeed } from '../../model/seeds.ts';
import type { SlashCommand } from '../command.ts';
import { checkCooldown } from '../cooldowns.ts';
import { VARIATION_STRENGTH } from '../result-actions.ts';
import { submitAndShow } from '../submit.ts';
import { autocompleteModel, defaultModel, findModel } from './models-option.ts';

export const DEFAULT_PSI = 0.7;
export const DEFAULT_COUNT = 4;
export const MAX_COUNT = 16;
const MAX_SEED = 2 ** 32 - 1;

/** `count` consecutive seeds from `first`, refused if they would pass the largest seed. */
export function consecutiveSeeds(first: number, count: number): number[] {
  if (first + count - 1 > MAX_SEED) {
    throw new UserError(
      `seeds ${first} to ${first + count - 1} go past the largest seed ${MAX_SEED}`,
      'pick a smaller seed',
    );
  }
  return Array.from({ length: count }, (_, i) => first + i);
}

/** A random first seed that leaves room for `count` consecutive ones. */
export function randomFirstSeed(count: number): number {
  return Math.min(randomSeed(), MAX_SEED - count + 1);
}

export const generate: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('generate')
    .setDescription('Generate faces: the same seed always gives the same face')
    .setContexts(InteractionContextType.Guild)
    .addIntegerOption((o) =>
      o.setName('seed').setDescription('First seed (random when empty)').setMinValue(0).setMaxValue(MAX_SEED),
    )
    .addStringOption((o) =>
      o.setName('model').setDescription('Model to use (see /models)').setAutocomplete(true),
    )
    .addNumberOption((o) =>
      o
        .setName('psi')
        .setDescription(
          `Truncation: lower is more average and cleaner, 1 is most varied (default ${DEFAULT_PSI})`,
        )
        .setMinValue(-1)
        .setMaxValue(2),
    )
    .addIntegerOption((o) =>
      o
        .setName('count')
        .setDescription(`How many faces (default ${DEFAULT_COUNT})`)
        .setMinValue(1)
        .setMaxValue(MAX_COUNT),
    )
    .addIntegerOption((o) =>
      o
        .setName('variation_of')
        .setDescription('Variations of the face of this seed (then `seed` picks the variations)')
        .setMinValue(0)
        .setMaxValue(MAX_SEED),
    ),
  visibility: 'public',
  async execute(interaction, ctx) {
    checkCooldown(ctx, interaction.user.id, 'generate');
    await ctx.respond.defer('public');
    const name = interaction.options.getString('model');
    const model = name ? await findModel(ctx, name) : await defaultModel(ctx);
    const count = interaction.options.getInteger('count') ?? DEFAULT_COUNT;
    const seeds = consecutiveSeeds(interaction.options.getInteger('seed') ?? randomFirstSeed(count), count);
    const variationOf = interaction.options.getInteger('variation_of');
    await submitAndShow(interaction, ctx, 'generate', {
      checkpoint: model.name,
      seeds,
      psi: interaction.options.getNumber('psi') ?? DEFAULT_PSI,
      grid: count > 1,
      ...(variationOf === null ? {} : { variation: { of: variationOf, strength: VARIATION_STRENGTH } }),
    });
  },
  autocomplete: (interaction, ctx) => autocompleteModel(interaction, ctx),
};
