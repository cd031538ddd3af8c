// A job as a Discord message: its live status while it waits or runs (with a cancel button and the
// latest preview), then its result (image grid, reroll and vote buttons) or why it ended. Result
// images over the upload limit are re-encoded to fit rather than refused.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { type ActionRowBuilder, AttachmentBuilder, type ButtonBuilder, EmbedBuilder } from 'discord.js';
import sharp from 'sharp';
import { pipelineToRgb } from '../images/compose.ts';
import { encodeUnderLimit, FILE_EXTENSIONS } from '../images/encode.ts';
import type { JobInfo } from '../jobs/types.ts';
import { formatScore } from '../pipelines/score/best.ts';
import {
  buttonRow,
  Colors,
  cancelButton,
  describeJob,
  formatSeeds,
  jobStatusEmbed,
  voteButton,
} from './replies.ts';
import { isSingleFace, resultFooterLines, resultRows } from './result-actions.ts';

/** A message body the status targets send or edit. */
export interface StatusPayload {
  content?: string;
  embeds: EmbedBuilder[];
  components: Array<ActionRowBuilder<ButtonBuilder>>;
  /** New files; when present they replace the message's attachments, when absent these stay. */
  files?: AttachmentBuilder[];
  /** Users the content may ping. */
  mentionUsers?: string[];
  /** The preview the message shows after this payload, if any. */
  preview?: ShownPreview;
}

/** A preview attachment and which version of which file it shows. */
export interface ShownPreview {
  name: string;
  /** Path, modification time and size: workers may rewrite one preview file in place. */
  key: string;
}

export interface RenderOptions {
  /** Bytes one upload may have. */
  uploadLimit: number;
  /** The preview the message shows now: kept while the job's preview is unchanged, else replaced. */
  shownPreview?: ShownPreview;
  /** Current votes of the result, for the vote button. */
  votes?: number;
  /** When the job is expected to end, as shown before (the tracker keeps it steady). */
  etaAt?: number;
}

/** Kinds whose results members vote on and reroll. */
export const VOTABLE_KINDS = new Set(['generate', 'blend', 'toonify']);

/** Previews and single faces below this side are scaled up (pixels kept sharp) to be readable in chat. */
export const MIN_SHOWN_SIDE = 256;

/**
 * An upload for `path` named `name`, re-encoded if it is over `limit` bytes. With `minSide`, an
 * image smaller than that is scaled up by a whole factor with nearest-neighbour sampling, so a
 * 32 px model's output is seen as what it is, only larger.
 */
export async function uploadFor(
  path: string,
  name: string,
  limit: number,
  options: { minSide?: number } = {},
): Promise<AttachmentBuilder> {
  if (options.minSide) {
    const { width = 0, height = 0 } = await sharp(path).metadata();
    const factor = Math.ceil(options.minSide / Math.max(1, Math.min(width, height)));
    if (factor > 1 && width && height) {
      const scaled = await sharp(path)
        .resize(width * factor, height * factor, { kernel: 'nearest' })
        .png()
        .toBuffer();
      if (scaled.length <= limit) return new AttachmentBuilder(scaled, { name: `${name}.png` });
    }
  }
  const { size } = await stat(path);
  if (size <= limit) return new AttachmentBuilder(path, { name: `${name}${extname(path).toLowerCase()}` });
  const encoded = await encodeUnderLimit(await pipelineToRgb(sharp(path)), { maxBytes: limit });
  return new AttachmentBuilder(encoded.buffer, { name: `${name}${FILE_EXTENSIONS[encoded.format]}` });
}

/**
 * Identifies what a file shows; undefined when it is gone. By content, not modification time:
 * workers rewrite a preview file in place, often with the same picture.
 */
async function fileVersion(path: string): Promise<string | undefined> {
  const bytes = await readFile(path).catch(() => undefined);
  return bytes ? `${path}#${createHash('sha1').update(bytes).digest('hex')}` : undefined;
}

export async function renderJob(job: JobInfo, options: RenderOptions): Promise<StatusPayload> {
  if (job.status === 'completed') return renderResult(job, options);
  if (job.status === 'queued' || job.status === 'running') {
    const path = job.progress?.previewPath;
    const key = path ? await fileVersion(path) : undefined;
    let preview = key && key === options.shownPreview?.key ? options.shownPreview : undefined;
    let files: AttachmentBuilder[] | undefined;
    if (path && key && !preview) {
      files = [await uploadFor(path, 'preview', options.uploadLimit, { minSide: MIN_SHOWN_SIDE })];
      preview = { name: files[0].name!, key };
    }
    return {
      embeds: [jobStatusEmbed(job, { previewName: preview?.name, etaAt: options.etaAt })],
      components: [buttonRow(cancelButton(job.id))],
      // An old preview is dropped when the job has none any more.
      files: files ?? (options.shownPreview && !preview ? [] : undefined),
      preview,
    };
  }
  // Failed or cancelled: no buttons left to press, and no stale preview.
  return { embeds: [jobStatusEmbed(job)], components: [], files: [] };
}

async function renderResult(job: JobInfo, options: RenderOptions): Promise<StatusPayload> {
  const embed = new EmbedBuilder().setColor(Colors.done).setFooter({ text: `job ${job.id}` });
  const files: AttachmentBuilder[] = [];
  const votable = resultRows(job, options.votes ?? 0);
  const footer = resultFooterLines(job);
  switch (job.kind) {
    case 'generate': {
      const result = job.result!;
      const image = result.gridPath ?? result.imagePaths[0];
      files.push(
        await uploadFor(image, `facestyle-${job.id}`, options.uploadLimit, {
          minSide: isSingleFace(job) ? MIN_SHOWN_SIDE : undefined,
        }),
      );
      const variation = job.payload.variation ? `Variations of seed ${job.payload.variation.of}: ` : '';
      embed
        .setTitle(
          `${variation}${variation ? 'seed' : 'Seed'}${job.payload.seeds.length === 1 ? '' : 's'} ${formatSeeds(job.payload.seeds)}`,
        )
        .setDescription([`${describeJob(job)}`, `by <@${job.userId}>`, ...footer].join('\n'));
      embed.setImage(`attachment://${files[0].name}`);
      return { embeds: [embed], components: votable, files };
    }
    case 'blend': {
      const result = job.result!;
      files.push(await uploadFor(result.gridPath, `blend-${job.id}`, options.uploadLimit));
      if (result.matrixPath)
        files.push(await uploadFor(result.matrixPath, `matrix-${job.id}`, options.uploadLimit));
      embed
        .setTitle(`Blend at ${job.payload.layer}px`)
        .setDescription(
          [`${describeJob(job)}`, `rows: base | style | blend · by <@${job.userId}>`, ...footer].join('\n'),
        )
        .setImage(`attachment://${files[0].name}`);
      return { embeds: [embed], components: votable, files };
    }
    case 'toonify': {
      const result = job.result!;
      files.push(await uploadFor(result.gridPath, `toonify-${job.id}`, options.uploadLimit));
      embed
        .setTitle('Toonified')
        .setDescription(
          [describeJob(job), `original | reconstruction | stylised · by <@${job.userId}>`, ...footer].join(
            '\n',
          ),
        )
        .setImage(`attachment://${files[0].name}`);
      // No reroll: there are no seeds to change, and the photo is gone.
      return { embeds: [embed], components: [buttonRow(voteButton(job.id, options.votes ?? 0))], files };
    }
    case 'finetune': {
      const snapshots = job.result?.snapshots ?? [];
      const name = job.meta.modelName ?? 'the new model';
      const last = snapshots.at(-1);
      const best = snapshots.find((s) => s.epoch === job.result?.bestEpoch && s.score);
      const suggested = best ?? last;
      embed
        .setTitle(`Fine-tune ${name} finished`)
        .setDescription(
          [
            describeJob(job),
            snapshots.length
              ? `Snapshots at epoch${snapshots.length === 1 ? '' : 's'} ${snapshots.map((s) => s.epoch).join(', ')}.`
              : 'No snapshot was saved.',
            best?.score
              ? `Best epoch: **${best.epoch}** (${formatScore(best.score)} against the training images, lower is better).`
              : '',
            suggested ? `Try it: \`/blend model:${name} epochs:${suggested.epoch} layer:32\`` : '',
          ]
            .filter(Boolean)
            .join('\n'),
        );
      const picture = job.result?.progressImagePath ?? last?.previewPath;
      if (picture) {
        files.push(await uploadFor(picture, `preview-${job.id}`, options.uploadLimit));
        embed.setImage(`attachment://${files[0].name}`);
      }
      return { embeds: [embed], components: [], files };
    }
    default:
      embed.setTitle('Done').setDescription(describeJob(job));
      return { embeds: [embed], components: [], files };
  }
}
