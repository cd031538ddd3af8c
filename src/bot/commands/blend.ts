// /blend layer [epochs] [model] [direction] [width] [seeds] [matrix]: layer-swaps a fine-tune's
// snapshot into its base model and shows base | style | blend for each seed, with a vote button.
// Without epochs it takes the best-scored snapshot (lowest KID against the training images), else
// the newest, and the job message says which.
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { UserError } from '../../errors.ts';
import type { BlendPayload } from '../../jobs/kinds.ts';
import { parseSeeds } from '../../model/seeds.ts';
import { formatScore } from '../../pipelines/score/best.ts';
import type { BotContext, SlashCommand } from '../command.ts';
import { checkCooldown } from '../cooldowns.ts';
import { VARIATION_STRENGTH } from '../result-actions.ts';
import type { ModelSummary } from '../services.ts';
import { submitAndShow } from '../submit.ts';
import { consecutiveSeeds, DEFAULT_PSI, randomFirstSeed } from './generate.ts';
import { autocompleteModel, findModel } from './models-option.ts';

const LAYERS = [4, 8, 16, 32, 64, 128, 256, 512, 1024];
const MAX_SEEDS = 8;
const DEFAULT_SEEDS = 4;
const MAX_WIDTH = 8;

/** The newest fine-tune: what members most likely want to blend. */
async function latestFinetune(ctx: BotContext): Promise<ModelSummary> {
  const finetunes = (await ctx.services.models.list()).filter((m) => m.kind === 'finetuned');
  const latest = finetunes.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0))[0];
  if (!latest)
    throw new UserError('there is no fine-tuned model to blend yet', 'an admin can train one with /finetune');
  return latest;
}

/** The snapshot to blend: the one asked for, else the best-scored, else the newest; and why. */
export function chooseSnapshot(model: ModelSummary, epoch: number | null): { epoch?: number; note?: string } {
  if (epoch !== null) return { epoch };
  if (model.bestEpoch !== undefined && model.score) {
    return {
      epoch: model.bestEpoch,
      note: `epoch ${model.bestEpoch} of ${model.name}: its best-scored snapshot (${formatScore(model.score)}, lower is better)`,
    };
  }
  const newest = model.snapshots?.at(-1);
  return newest === undefined
    ? {}
    : { epoch: newest, note: `epoch ${newest} of ${model.name}: its newest snapshot (none is scored)` };
}

export const blend: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('blend')
    .setDescription("Blend a fine-tune into its base model: base pose and shape, the style's texture")
    .setContexts(InteractionContextType.Guild)
    .addIntegerOption((o) =>
      o
        .setName('layer')
        .setDescription('Resolution where the style takes over: lower gives more style')
        .setRequired(true)
        .addChoices(...LAYERS.map((layer) => ({ name: `${layer}px`, value: layer }))),
    )
    .addIntegerOption((o) =>
      o
        .setName('epochs')
        .setDescription('Which snapshot of the fine-tune (its epoch; default: the best-scored one)')
        .setMinValue(1),
    )
    .addStringOption((o) =>
      o.setName('model').setDescription('Fine-tuned model (default: the newest)').setAutocomplete(true),
    )
    .addStringOption((o) =>
      o
        .setName('direction')
        .setDescription('Which model gives the coarse layers')
        .addChoices(
          { name: 'texture: base shapes, style colours and lines', value: 'texture' },
          { name: 'structure: style shapes, base textures', value: 'structure' },
        ),
    )
    .addIntegerOption((o) =>
      o
        .setName('width')
        .setDescription('Octaves of resolution over which to fade between the models (0: a sharp swap)')
        .setMinValue(0)
        .setMaxValue(MAX_WIDTH),
    )
    .addStringOption((o) =>
      o.setName('seeds').setDescription(`Seeds, e.g. 1-4,42 (at most ${MAX_SEEDS}; random when empty)`),
    )
    .addBooleanOption((o) => o.setName('matrix').setDescription('Also show every swap layer side by side'))
    .addIntegerOption((o) =>
      o
        .setName('variation_of')
        .setDescription('Variations of the face of this seed (then `seeds` picks the variations)')
        .setMinValue(0)
        .setMaxValue(2 ** 32 - 1),
    ),
  visibility: 'public',
  async execute(interaction, ctx) {
    checkCooldown(ctx, interaction.user.id, 'blend');
    await ctx.respond.defer('public');
    const name = interaction.options.getString('model');
    const model = name ? await findModel(ctx, name, ['finetuned']) : await latestFinetune(ctx);
    const base = model.parent ?? (await ctx.services.models.defaultModel());
    if (!base) throw new UserError(`the model "${model.name}" does not say which model it was trained from`);
    const layer = interaction.options.getInteger('layer', true);
    if (layer > model.resolution) {
      throw new UserError(
        `layer ${layer}px is above the model's resolution (${model.resolution}px)`,
        'pick a lower layer',
      );
    }
    const seedsText = interaction.options.getString('seeds');
    const chosen = chooseSnapshot(model, interaction.options.getInteger('epochs'));
    const payload: BlendPayload = {
      base,
      style: await ctx.services.models.snapshot(model.name, chosen.epoch),
      layer,
      width: interaction.options.getInteger('width') ?? 0,
      direction: (interaction.options.getString('direction') ?? 'texture') as BlendPayload['direction'],
      seeds: seedsText
        ? parseSeeds(seedsText, MAX_SEEDS)
        : consecutiveSeeds(randomFirstSeed(DEFAULT_SEEDS), DEFAULT_SEEDS),
      psi: DEFAULT_PSI,
      matrix: interaction.options.getBoolean('matrix') ?? false,
    };
    const variationOf = interaction.options.getInteger('variation_of');
    if (variationOf !== null) payload.variation = { of: variationOf, strength: VARIATION_STRENGTH };
    // The payload's style is a checkpoint reference; members know it by name and epoch. The epoch
    // is the one blended even when /blend picked it (best-scored), so the reproduce line repeats it.
    await submitAndShow(interaction, ctx, 'blend', payload, {
      styleModel: model.name,
      ...(chosen.epoch !== undefined ? { styleEpoch: String(chosen.epoch) } : {}),
      ...(chosen.note ? { snapshotNote: chosen.note } : {}),
    });
  },
  autocomplete: (interaction, ctx) => autocompleteModel(interaction, ctx, ['finetuned']),
};
