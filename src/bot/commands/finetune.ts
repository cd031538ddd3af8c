// /finetune dataset name [epochs] [snapshot_every] [base]: admins train a new style model from an
// uploaded archive of faces. The archive is fetched at once (CDN links expire); progress goes to an
// ordinary channel message edited in place, which outlives the 15-minute interaction token and a
// restart of the bot (its ids are kept with the job).
import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Attachment,
  type ChatInputCommandInteraction,
  EmbedBuilder,
  InteractionContextType,
  PermissionFlagsBits,
  SlashCommandBuilder,
} from 'discord.js';
import { sniffArchive, sniffImage } from '../../datasets/sniff.ts';
import { isUserError, UserError } from '../../errors.ts';
import { plural } from '../../text.ts';
import type { InteractionContext, SlashCommand } from '../command.ts';
import { downloadAttachment } from '../download.ts';
import { Colors, messageLink, progressBar } from '../replies.ts';
import type { DatasetAlign, ImportedDataset } from '../services.ts';
import { jobMeta } from '../submit.ts';
import { ChannelMessageTarget } from '../tracker.ts';
import { checkUploadSize, declaredType, readHead } from '../uploads.ts';
import { autocompleteModel, defaultModel, findModel } from './models-option.ts';

export const MAX_DATASET_BYTES = 500 * 2 ** 20;
const DEFAULT_EPOCHS = 50;
const MAX_EPOCHS = 1000;
const SNAPSHOTS_BY_DEFAULT = 5;
const MODEL_NAME = /^[a-z0-9][a-z0-9_-]{1,31}$/;
const ARCHIVE_NAME = /\.(zip|tar|tar\.gz|tgz)$/i;
const READABLE_ARCHIVES = new Set(['zip', 'gzip', 'tar']);
// What the bot must be allowed in the channel to post and edit the progress message.
const CHANNEL_PERMISSIONS = [
  PermissionFlagsBits.ViewChannel,
  PermissionFlagsBits.SendMessages,
  PermissionFlagsBits.EmbedLinks,
  PermissionFlagsBits.AttachFiles,
];

/** Refuses what is obviously not a dataset archive before spending a download on it. */
export function checkDatasetAttachment(attachment: Attachment): void {
  if (declaredType(attachment)?.startsWith('image/')) {
    throw new UserError(
      `"${attachment.name}" is a single image, not a dataset`,
      'upload a .zip or .tar.gz archive with a few hundred face images',
    );
  }
  if (!ARCHIVE_NAME.test(attachment.name)) {
    throw new UserError(
      `"${attachment.name}" is not a .zip or .tar.gz archive`,
      'pack the face images into a .zip and upload that',
    );
  }
  checkUploadSize(
    attachment,
    'archive',
    MAX_DATASET_BYTES,
    'a few hundred images of about 1024 px are enough',
  );
}

/** Reads the first bytes of the download: the name may lie about what it is. */
async function checkArchiveContent(path: string, name: string): Promise<void> {
  const head = await readHead(path, 512);
  const format = sniffArchive(head);
  if (format && READABLE_ARCHIVES.has(format)) return;
  if (format)
    throw new UserError(
      `"${name}" is a ${format} archive, which is not supported`,
      'repack it as .zip or .tar.gz',
    );
  if (sniffImage(head))
    throw new UserError(`"${name}" is an image renamed as an archive`, 'upload a real .zip of the images');
  throw new UserError(
    `"${name}" is not a readable archive`,
    'upload a .zip or .tar.gz made with an ordinary archiver',
  );
}

function checkModelName(name: string): void {
  if (!MODEL_NAME.test(name)) {
    throw new UserError(
      `"${name}" cannot be a model name`,
      'use 2 to 32 lower-case letters, digits, - or _, starting with a letter or digit',
    );
  }
}

function stageEmbed(name: string, stage: string): EmbedBuilder {
  return new EmbedBuilder().setColor(Colors.queued).setTitle(`Fine-tune ${name}`).setDescription(stage);
}

/** What the admin reads before the training starts: what was kept, how, and what was not. */
export function datasetSummary(name: string, imported: ImportedDataset): string {
  const lines = [`Dataset for **${name}**: ${plural(imported.images, 'image')} kept.`];
  const by = imported.keptBy;
  if (by && by.faces > 0 && by.center > 0)
    lines.push(
      `${by.faces} aligned on a detected face, ${by.center} centre-cropped (marked with an orange strip on the sheet).`,
    );
  else if (by?.center) lines.push('All centre-cropped (no face detected, or align:center).');
  else if (by?.faces) lines.push('All aligned on a detected face.');
  if (imported.skipped > 0)
    lines.push(
      `${plural(imported.skipped, 'file')} not used${imported.notUsed ? ` (${imported.notUsed})` : ''}.`,
    );
  if (imported.contactSheet) lines.push('The kept images are below.');
  lines.push('Starting the fine-tune…');
  return lines.join('\n');
}

// Dataset preparation reports often; the channel message is edited at most this often.
const PREPARE_REFRESH_MS = 5_000;

const ALIGN_CHOICES = [
  { name: 'auto: on detected faces, centre crop where none is found (default)', value: 'auto' },
  { name: 'faces: only images with a detected face (photos)', value: 'faces' },
  { name: 'center: centre crop every image (drawn, anime, framed art)', value: 'center' },
] as const;

interface FinetuneRequest {
  dataset: Attachment;
  align: DatasetAlign;
  name: string;
  epochs: number;
  snapshotEvery: number;
}

/** The options, checked without any I/O so that mistakes are answered at once. */
function readRequest(interaction: ChatInputCommandInteraction): FinetuneRequest {
  const dataset = interaction.options.getAttachment('dataset', true);
  const name = interaction.options.getString('name', true).trim();
  const epochs = interaction.options.getInteger('epochs') ?? DEFAULT_EPOCHS;
  const snapshotEvery =
    interaction.options.getInteger('snapshot_every') ??
    Math.max(1, Math.floor(epochs / SNAPSHOTS_BY_DEFAULT));
  checkModelName(name);
  checkDatasetAttachment(dataset);
  if (snapshotEvery > epochs) {
    throw new UserError(
      `snapshot_every (${snapshotEvery}) is more than epochs (${epochs})`,
      'snapshots are saved every that many epochs',
    );
  }
  if (!interaction.appPermissions.has(CHANNEL_PERMISSIONS)) {
    throw new UserError(
      'I cannot post the progress message in this channel',
      'give me View Channel, Send Messages, Embed Links and Attach Files here, or run /finetune in another channel',
    );
  }
  const align = (interaction.options.getString('align') ?? 'auto') as DatasetAlign;
  return { dataset, name, epochs, snapshotEvery, align };
}

async function run(interaction: ChatInputCommandInteraction, ctx: InteractionContext): Promise<void> {
  const request = readRequest(interaction);
  const { dataset, name } = request;
  await ctx.respond.defer('ephemeral');
  const baseName = interaction.options.getString('base');
  const base = baseName ? await findModel(ctx, baseName) : await defaultModel(ctx);
  if ((await ctx.services.models.list()).some((m) => m.name === name)) {
    throw new UserError(`a model called "${name}" already exists`, 'pick another name (see /models)');
  }
  const archive = join(
    ctx.config.dataDir,
    'uploads',
    `${interaction.id}-${dataset.name.replace(/[^\w.-]/g, '_')}`,
  );
  // The name is claimed first, so that two admins cannot both build under it; everything this
  // attempt claims under the name is given back unless it ends in a queued job.
  const runDir = await ctx.services.models.reserveRunDir(name);
  let datasetDir: string | undefined;
  let submitted = false;
  try {
    // At once: the attachment URL is signed and expires.
    await downloadAttachment(dataset.url, archive, MAX_DATASET_BYTES);
    await checkArchiveContent(archive, dataset.name);
    const status = new ChannelMessageTarget(ctx.client, interaction.channelId);
    const where = await status.show({
      embeds: [stageEmbed(name, `Preparing the dataset from ${dataset.name}…`)],
      components: [],
    });
    const link = messageLink(interaction.guildId ?? '', where.channelId, where.messageId);
    await ctx.respond.send({ content: `Preparing the dataset: progress in ${link}` });
    try {
      let shownAt = Date.now();
      const imported = await ctx.services.datasets.importArchive(archive, {
        name,
        resolution: base.resolution,
        align: request.align,
        ownerId: interaction.user.id,
        // A bot restarted while the dataset is built picks the job up on this same message.
        meta: { ...jobMeta(interaction), statusMessageId: where.messageId },
        onProgress: (fraction, stage) => {
          if (Date.now() - shownAt < PREPARE_REFRESH_MS) return;
          shownAt = Date.now();
          const text = `Preparing the dataset: ${stage}\n${progressBar(fraction)}`;
          status.show({ embeds: [stageEmbed(name, text)], components: [] }).catch(() => {});
        },
      });
      datasetDir = imported.datasetDir;
      // The admin sees what the model will learn from before it starts (and can /cancel it).
      await ctx.respond.send({
        content: datasetSummary(name, imported),
        files: imported.contactSheet
          ? [{ attachment: imported.contactSheet, name: 'contact-sheet.png' }]
          : [],
      });
      const job = await ctx.services.jobs.submit({
        kind: 'finetune',
        payload: {
          datasetDir: imported.datasetDir,
          base: base.name,
          epochs: request.epochs,
          snapshotEvery: request.snapshotEvery,
          runDir,
        },
        actor: ctx.actor,
        meta: { ...jobMeta(interaction), statusMessageId: where.messageId, modelName: name },
      });
      submitted = true;
      await ctx.tracker.watch(job, status);
      // A message of its own: the summary above, with its contact sheet, stays readable.
      await ctx.respond.followUp(
        { content: `Fine-tune **${name}** queued as job \`${job.id}\`: progress in ${link}` },
        'ephemeral',
      );
    } catch (err) {
      // The channel message must not stay at "preparing" forever.
      const reason = isUserError(err) ? err.message : 'an internal error (see the bot log)';
      await status
        .show({
          embeds: [stageEmbed(name, `Could not start: ${reason}`).setColor(Colors.failed)],
          components: [],
        })
        .catch(() => {});
      throw err;
    }
  } finally {
    await rm(archive, { force: true });
    if (!submitted) {
      // rmdir, not rm: only the empty reservation is removed, never anything a run wrote.
      await rmdir(runDir).catch(() => {});
      if (datasetDir) await rm(datasetDir, { recursive: true, force: true }).catch(() => {});
    }
  }
}

export const finetune: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('finetune')
    .setDescription('Train a new style model from an archive of faces (admins)')
    .setContexts(InteractionContextType.Guild)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addAttachmentOption((o) =>
      o.setName('dataset').setDescription('A .zip or .tar.gz of a few hundred face images').setRequired(true),
    )
    .addStringOption((o) =>
      o
        .setName('name')
        .setDescription('Name of the new model (lower case, digits, - and _)')
        .setRequired(true)
        .setMaxLength(32),
    )
    .addIntegerOption((o) =>
      o
        .setName('epochs')
        .setDescription(`Passes over the dataset (default ${DEFAULT_EPOCHS})`)
        .setMinValue(1)
        .setMaxValue(MAX_EPOCHS),
    )
    .addIntegerOption((o) =>
      o
        .setName('snapshot_every')
        .setDescription('Save a snapshot and a preview every this many epochs')
        .setMinValue(1),
    )
    .addStringOption((o) =>
      o
        .setName('align')
        .setDescription('How images are cropped to faces (default auto)')
        .addChoices(...ALIGN_CHOICES),
    )
    .addStringOption((o) =>
      o
        .setName('base')
        .setDescription('Model to start from (default: the default model)')
        .setAutocomplete(true),
    ),
  visibility: 'ephemeral',
  adminOnly: true,
  execute: run,
  autocomplete: (interaction, ctx) => autocompleteModel(interaction, ctx, ['base']),
};
