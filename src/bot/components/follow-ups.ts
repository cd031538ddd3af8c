// Follow-ups of a finished /generate or /blend: reroll:<job> (new seeds), enlarge:<job>:<face>
// (that face alone, full size) and vary:<job>:<face> (nearby latents of that face). Each queues a
// job of the same kind as the original, owned by whoever pressed, whose result links back to it.
import type { ButtonInteraction } from 'discord.js';
import { UserError } from '../../errors.ts';
import type { BlendPayload, GeneratePayload } from '../../jobs/kinds.ts';
import type { JobInfo } from '../../jobs/types.ts';
import type { ButtonHandler, InteractionContext } from '../command.ts';
import { consecutiveSeeds, randomFirstSeed } from '../commands/generate.ts';
import { checkCooldown } from '../cooldowns.ts';
import { parseFaceArgument, VARIATION_STRENGTH } from '../result-actions.ts';
import { submitAndShow } from '../submit.ts';
import { ButtonAction } from './ids.ts';

type FollowUp = 'reroll' | 'enlarge' | 'vary';
/** Variations shown for one face: a row of the grid. */
const VARIATIONS = 4;

async function sourceJob(ctx: InteractionContext, jobId: string): Promise<JobInfo> {
  const job = await ctx.services.jobs.get(jobId);
  if (!job) {
    throw new UserError(
      'this result is too old to follow up (its job record was cleaned up)',
      'start a new one with /generate or /blend',
    );
  }
  if (job.kind !== 'generate' && job.kind !== 'blend')
    throw new UserError(`${job.kind} results have no ${'seeds'} to follow up`);
  return job;
}

/** Where the follow-up came from, and the display names the source job carried. */
function followUpMeta(
  interaction: ButtonInteraction,
  source: JobInfo,
  followUp: FollowUp,
  face?: number,
): Record<string, string> {
  const { styleModel, styleEpoch } = source.meta;
  return {
    followUp,
    sourceJob: source.id,
    sourceGuild: interaction.guildId ?? '',
    sourceChannel: interaction.channelId ?? '',
    sourceMessage: interaction.message.id,
    ...(face === undefined ? {} : { sourceFace: String(face) }),
    ...(styleModel ? { styleModel } : {}),
    ...(styleEpoch ? { styleEpoch } : {}),
  };
}

/** Queues `seeds` (and `variation`) as a job like `source`; one face is shown full size, unlabelled. */
async function submitLike(
  interaction: ButtonInteraction,
  ctx: InteractionContext,
  source: JobInfo,
  change: Pick<GeneratePayload, 'seeds' | 'variation'>,
  meta: Record<string, string>,
): Promise<void> {
  if (source.kind === 'generate') {
    const { variation: _old, ...rest } = source.payload;
    const payload: GeneratePayload = { ...rest, ...change, grid: change.seeds.length > 1 };
    await submitAndShow(interaction, ctx, 'generate', payload, meta);
  } else if (source.kind === 'blend') {
    const { variation: _old, ...rest } = source.payload;
    // The matrix is about layers, not faces: a follow-up shows the faces only.
    const payload: BlendPayload = { ...rest, ...change, matrix: change.seeds.length > 1 && rest.matrix };
    await submitAndShow(interaction, ctx, 'blend', payload, meta);
  }
}

function faceOf(source: JobInfo, argument: string): number {
  const parsed = parseFaceArgument(argument);
  const seeds = source.kind === 'generate' || source.kind === 'blend' ? source.payload.seeds : [];
  if (!parsed || parsed.face >= seeds.length)
    throw new UserError('this button points at no face of the result');
  return parsed.face;
}

function jobIdOf(argument: string): string {
  const parsed = parseFaceArgument(argument);
  if (!parsed)
    throw new UserError('this button is no longer supported', 'use /help to see what the bot can do now');
  return parsed.jobId;
}

export const reroll: ButtonHandler = {
  action: ButtonAction.Reroll,
  acknowledgement: 'public',
  async execute(interaction, jobId, ctx) {
    const source = await sourceJob(ctx, jobId);
    // Before any public "thinking" reply: a refusal stays private and nothing flashes.
    checkCooldown(ctx, interaction.user.id, source.kind);
    const seeds = source.kind === 'generate' || source.kind === 'blend' ? source.payload.seeds : [];
    const next = consecutiveSeeds(randomFirstSeed(seeds.length), seeds.length);
    const variation =
      source.kind === 'generate' || source.kind === 'blend' ? source.payload.variation : undefined;
    await submitLike(
      interaction,
      ctx,
      source,
      { seeds: next, ...(variation ? { variation } : {}) },
      followUpMeta(interaction, source, 'reroll'),
    );
  },
};

export const enlarge: ButtonHandler = {
  action: ButtonAction.Enlarge,
  acknowledgement: 'public',
  async execute(interaction, argument, ctx) {
    const source = await sourceJob(ctx, jobIdOf(argument));
    const face = faceOf(source, argument);
    checkCooldown(ctx, interaction.user.id, source.kind);
    if (source.kind !== 'generate' && source.kind !== 'blend') return;
    const { seeds, variation } = source.payload;
    await submitLike(
      interaction,
      ctx,
      source,
      { seeds: [seeds[face]], ...(variation ? { variation } : {}) },
      followUpMeta(interaction, source, 'enlarge', face),
    );
  },
};

export const vary: ButtonHandler = {
  action: ButtonAction.Vary,
  acknowledgement: 'public',
  async execute(interaction, argument, ctx) {
    const source = await sourceJob(ctx, jobIdOf(argument));
    const face = faceOf(source, argument);
    checkCooldown(ctx, interaction.user.id, source.kind);
    if (source.kind !== 'generate' && source.kind !== 'blend') return;
    if (source.payload.variation)
      throw new UserError(
        'these are already variations',
        'enlarge the one you like, or vary a face of the original',
      );
    await submitLike(
      interaction,
      ctx,
      source,
      {
        seeds: consecutiveSeeds(randomFirstSeed(VARIATIONS), VARIATIONS),
        variation: { of: source.payload.seeds[face], strength: VARIATION_STRENGTH },
      },
      followUpMeta(interaction, source, 'vary', face),
    );
  },
};
