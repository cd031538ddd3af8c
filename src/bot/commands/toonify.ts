// /toonify photo [blend] [layer] [face]: a member's own photo in a community style, shown as
// original | reconstruction | stylised with a vote button. The attachment and the member's quota
// are checked before any download, fetched at once (CDN links expire) and checked again by its bytes. The photo serves this
// one job: the worker deletes it when the job ends, and so does the bot for a job that never ran
// (see src/store/toonify-photos.ts). It never enters a dataset, the catalogue or a contest.
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Attachment,
  type ChatInputCommandInteraction,
  InteractionContextType,
  SlashCommandBuilder,
} from 'discord.js';
import { sniffImage } from '../../datasets/sniff.ts';
import { UserError } from '../../errors.ts';
import type { ToonifyPayload } from '../../jobs/kinds.ts';
import { releasePhoto, toonifyPhotosDir } from '../../store/toonify-photos.ts';
import type { BotContext, InteractionContext, SlashCommand } from '../command.ts';
import { checkCooldown } from '../cooldowns.ts';
import { downloadAttachment } from '../download.ts';
import type { ModelKind, ModelSummary } from '../services.ts';
import { jobMeta } from '../submit.ts';
import { InteractionReplyTarget } from '../tracker.ts';
import { checkUploadSize, declaredType, readHead } from '../uploads.ts';
import { autocompleteModel, findModel } from './models-option.ts';

/** Over Discord's own upload limit for most servers; a face needs far less. */
export const MAX_PHOTO_BYTES = 20 * 2 ** 20;
const PHOTO_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp']);
const PHOTO_NAME = /\.(jpe?g|png|webp)$/i;
const PHOTO_FORMATS = new Set(['jpeg', 'png', 'webp']);
const STYLE_KINDS: readonly ModelKind[] = ['finetuned', 'blend'];
const LAYERS = [4, 8, 16, 32, 64, 128, 256, 512, 1024];
/**
 * The swap layer when none is given: half the model's resolution, at most 32 px. On the 32 px demo
 * models a swap at 32 changes nothing (the style gives only the last layer) while 16 visibly
 * stylises and keeps the photo's shape (docs/images/demo-blend-matrix.png); from 64 px up, 32 is
 * the report's and the classic toonify swap.
 */
const MAX_DEFAULT_LAYER = 32;
export function defaultToonifyLayer(resolution: number): number {
  return Math.max(4, Math.min(MAX_DEFAULT_LAYER, resolution / 2));
}
const MAX_FACE = 20;

/** Refuses what is obviously not a photo before spending a download on it. */
export function checkPhotoAttachment(attachment: Attachment): void {
  const type = declaredType(attachment);
  // The name decides only when Discord could not tell the type.
  const looksLikePhoto = type ? PHOTO_TYPES.has(type) : PHOTO_NAME.test(attachment.name);
  if (!looksLikePhoto) {
    throw new UserError(
      `"${attachment.name}" is not a JPEG, PNG or WebP photo`,
      'upload a photo of your face as .jpg, .png or .webp',
    );
  }
  checkUploadSize(
    attachment,
    'photo',
    MAX_PHOTO_BYTES,
    'send a smaller copy of it: the face is resized to the model anyway',
  );
}

/** The file's real format, from its first bytes: the name and the declared type may lie. */
async function photoFormat(path: string, name: string): Promise<string> {
  const format = sniffImage(await readHead(path, 16));
  if (format && PHOTO_FORMATS.has(format)) return format;
  if (format)
    throw new UserError(
      `"${name}" is a ${format.toUpperCase()} image`,
      'send the photo as JPEG, PNG or WebP',
    );
  throw new UserError(`"${name}" is not an image`, 'upload the photo itself, as JPEG, PNG or WebP');
}

/** The newest style: what a member most likely wants. */
async function newestStyle(ctx: BotContext): Promise<ModelSummary> {
  const styles = (await ctx.services.models.list()).filter((m) => STYLE_KINDS.includes(m.kind));
  const newest = styles.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0))[0];
  if (!newest)
    throw new UserError('there is no style to toonify with yet', 'an admin can train one with /finetune');
  return newest;
}

/** Everything but the photo: the model and the swap. */
async function stylePayload(
  interaction: ChatInputCommandInteraction,
  ctx: BotContext,
): Promise<Omit<ToonifyPayload, 'photoPath'>> {
  const name = interaction.options.getString('blend');
  const model = name ? await findModel(ctx, name, STYLE_KINDS) : await newestStyle(ctx);
  const layer = interaction.options.getInteger('layer');
  const face = interaction.options.getInteger('face');
  const common = face === null ? {} : { face };
  if (model.kind === 'blend') {
    if (layer !== null) {
      throw new UserError(
        `"${model.name}" is a saved blend: its swap layer is part of it`,
        'leave layer empty, or pick a fine-tuned model to choose the layer',
      );
    }
    return { ...common, blend: model.name, ...(model.parent ? { base: model.parent } : {}) };
  }
  const base = model.parent ?? (await ctx.services.models.defaultModel());
  if (!base) throw new UserError(`the model "${model.name}" does not say which model it was trained from`);
  const swap = layer ?? defaultToonifyLayer(model.resolution);
  if (swap > model.resolution) {
    throw new UserError(
      `layer ${swap}px is above the model's resolution (${model.resolution}px)`,
      'pick a lower layer',
    );
  }
  return { ...common, base, style: model.name, layer: swap };
}

/** Downloads the photo next to the others waiting for their job; removes it again on any refusal. */
async function fetchPhoto(interaction: ChatInputCommandInteraction, ctx: BotContext, photo: Attachment) {
  const dir = toonifyPhotosDir(ctx.config.dataDir);
  const partial = join(dir, `${interaction.id}.part`);
  try {
    await downloadAttachment(photo.url, partial, MAX_PHOTO_BYTES);
    const path = join(dir, `${interaction.id}.${await photoFormat(partial, photo.name)}`);
    await rename(partial, path);
    return path;
  } finally {
    await rm(partial, { force: true });
  }
}

async function run(interaction: ChatInputCommandInteraction, ctx: InteractionContext): Promise<void> {
  const photo = interaction.options.getAttachment('photo', true);
  // Cheapest first: the attachment's declared type and size, the member's quota and the server's
  // cap, the options; only then the download (up to MAX_PHOTO_BYTES) and the decode of its bytes.
  checkPhotoAttachment(photo);
  checkCooldown(ctx, interaction.user.id, 'toonify');
  // Before the public "thinking": a member over quota is answered privately, and the queue's
  // count is one quick store read, well inside the 3 s acknowledgement window.
  await ctx.services.jobs.admit('toonify', ctx.actor);
  await ctx.respond.defer('public');
  const style = await stylePayload(interaction, ctx);
  const photoPath = await fetchPhoto(interaction, ctx, photo);
  const policy = { dataDir: ctx.config.dataDir, retentionMs: ctx.config.toonifyPhotoRetentionMs ?? 0 };
  const job = await ctx.services.jobs
    .submit({
      kind: 'toonify',
      payload: { ...style, photoPath },
      actor: ctx.actor,
      meta: jobMeta(interaction),
    })
    .catch(async (err: unknown) => {
      // Refused (quota, queue full): no job will ever read it.
      await rm(photoPath, { force: true });
      throw err;
    });
  ctx.cooldowns.record(interaction.user.id, 'toonify');
  const { finished } = await ctx.tracker.watch(
    job,
    new InteractionReplyTarget(ctx.respond, ctx.client, ctx.tokenLifetimeMs),
    { queuedGraceMs: ctx.queuedGraceMs },
  );
  // The worker releases the photo of a job it ran; this covers one cancelled or failed before that.
  void finished
    .then(() => releasePhoto(photoPath, policy))
    .catch((err) =>
      ctx.log.error('could not release a toonify photo', {
        job: job.id,
        path: photoPath,
        error: (err as Error).message,
      }),
    );
}

export const toonify: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('toonify')
    .setDescription('Your own photo in a community style: original | reconstruction | stylised')
    .setContexts(InteractionContextType.Guild)
    .addAttachmentOption((o) =>
      o
        .setName('photo')
        .setDescription('A photo of a face (JPEG, PNG or WebP); used for this job only, then deleted')
        .setRequired(true),
    )
    .addStringOption((o) =>
      o
        .setName('blend')
        .setDescription('A fine-tuned model or a saved blend (default: the newest)')
        .setAutocomplete(true),
    )
    .addIntegerOption((o) =>
      o
        .setName('layer')
        .setDescription(
          `Fine-tunes: resolution where the style takes over (default half the model's, at most ${MAX_DEFAULT_LAYER}px)`,
        )
        .addChoices(...LAYERS.map((layer) => ({ name: `${layer}px`, value: layer }))),
    )
    .addIntegerOption((o) =>
      o
        .setName('face')
        .setDescription('Which face when the photo shows several (default 0, the largest)')
        .setMinValue(0)
        .setMaxValue(MAX_FACE),
    ),
  visibility: 'public',
  execute: run,
  autocomplete: (interaction, ctx) => autocompleteModel(interaction, ctx, STYLE_KINDS),
};
