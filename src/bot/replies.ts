// What the bot's messages look like: job progress (position, ETA, progress bar), results, and
// errors that say what went wrong and what to do. Pure builders; sending is the caller's business.
import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  EmbedBuilder,
  type InteractionReplyOptions,
  MessageFlags,
} from 'discord.js';
import { isUserError } from '../errors.ts';
import type { JobInfo } from '../jobs/types.ts';
import { plural } from '../text.ts';
import { ButtonAction, buttonId } from './components/ids.ts';

export const Colors = {
  queued: 0x5865f2,
  running: 0xfee75c,
  done: 0x57f287,
  failed: 0xed4245,
  neutral: 0x99aab5,
} as const;

const BAR_FULL = '█';
const BAR_EMPTY = '░';

/** `██████░░░░ 60%` */
export function progressBar(fraction: number, width = 20): string {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const filled = Math.round(clamped * width);
  return `\`${BAR_FULL.repeat(filled)}${BAR_EMPTY.repeat(width - filled)}\` ${Math.floor(clamped * 100)}%`;
}

/** A Discord timestamp tag: every member sees it in their own time zone ("in 3 minutes" for R). */
export function discordTimestamp(ms: number, style: 'R' | 'f' | 't' = 'R'): string {
  return `<t:${Math.round(ms / 1000)}:${style}>`;
}

export function etaLine(etaSeconds: number | null | undefined, now = Date.now()): string {
  if (etaSeconds === null || etaSeconds === undefined || !Number.isFinite(etaSeconds)) return 'ETA unknown';
  return `done ${discordTimestamp(now + etaSeconds * 1000)}`;
}

/** "1-4, 7, 9-10": seeds as members type them. */
export function formatSeeds(seeds: number[]): string {
  const parts: string[] = [];
  let start = seeds[0];
  let previous = seeds[0];
  for (const seed of [...seeds.slice(1), Number.NaN]) {
    if (seed === previous + 1) {
      previous = seed;
      continue;
    }
    parts.push(start === previous ? `${start}` : `${start}-${previous}`);
    start = seed;
    previous = seed;
  }
  return parts.join(', ');
}

/**
 * A model as members know it: its name, never a file path. Jobs may hold a checkpoint path (a
 * fine-tune's snapshot); the file name without folder and extension stands in for it when the job
 * does not say which model and epoch it is.
 */
export function modelLabel(reference: string): string {
  if (!/[\\/]/.test(reference)) return reference;
  const file = reference.split(/[\\/]/).pop() ?? reference;
  return file.replace(/\.(safetensors|pkl|pt|pth)$/i, '');
}

/** The style model of a blend: "toons epoch 20" from the job's meta, else its file's name. */
export function blendStyleLabel(job: JobInfo): string {
  if (job.kind !== 'blend') return '';
  const { styleModel, styleEpoch } = job.meta;
  if (styleModel) return styleEpoch ? `${styleModel} epoch ${styleEpoch}` : styleModel;
  return modelLabel(job.payload.style);
}

/** One line saying what a job makes. */
export function describeJob(job: JobInfo): string {
  switch (job.kind) {
    case 'generate': {
      const p = job.payload;
      const n = p.seeds.length;
      return `${plural(n, 'face')} from **${modelLabel(p.checkpoint)}** · seed${n === 1 ? '' : 's'} ${formatSeeds(p.seeds)} · psi ${p.psi}`;
    }
    case 'blend': {
      const p = job.payload;
      const picked = job.meta.snapshotNote ? `\nstyle: ${job.meta.snapshotNote}` : '';
      return `**${modelLabel(p.base)}** × **${blendStyleLabel(job)}** at ${p.layer}px · seeds ${formatSeeds(p.seeds)} · psi ${p.psi}${picked}`;
    }
    case 'finetune': {
      const p = job.payload;
      const name = job.meta.modelName ? `**${job.meta.modelName}** ` : '';
      return `fine-tune ${name}from **${modelLabel(p.base)}**: ${plural(p.epochs, 'epoch')}, a snapshot every ${p.snapshotEvery}`;
    }
    case 'toonify': {
      const p = job.payload;
      return p.blend
        ? `toonify with **${modelLabel(p.blend)}**`
        : `toonify with **${modelLabel(p.style ?? '')}** at ${p.layer}px`;
    }
    case 'dataset':
      return `dataset for **${job.meta.modelName ?? 'a fine-tune'}** (${job.payload.align} alignment)`;
    case 'noop':
      return 'test job';
  }
}

/** The ETA line: at `etaAt` when the caller keeps one steady, else from the job's estimate. */
function shownEta(job: JobInfo, now: number, etaAt?: number): string {
  return etaAt === undefined ? etaLine(job.etaSeconds, now) : `done ${discordTimestamp(etaAt)}`;
}

const STATUS_TITLES: Record<JobInfo['status'], string> = {
  queued: '⏳ Queued',
  running: '⚙️ Running',
  completed: '✅ Done',
  failed: '❌ Failed',
  cancelled: '🛑 Cancelled',
};

/**
 * The live status of a job: position and ETA while queued; stage, progress bar and ETA while it
 * runs; why it ended otherwise. `previewName` names an attached preview image to show.
 */
export function jobStatusEmbed(
  job: JobInfo,
  options: { previewName?: string; now?: number; etaAt?: number } = {},
): EmbedBuilder {
  const now = options.now ?? Date.now();
  const lines = [describeJob(job)];
  const color = {
    queued: Colors.queued,
    running: Colors.running,
    completed: Colors.done,
    failed: Colors.failed,
    cancelled: Colors.neutral,
  }[job.status];
  if (job.status === 'queued') {
    lines.push(`Position **${job.position ?? '?'}** in the queue · ${shownEta(job, now, options.etaAt)}`);
  } else if (job.status === 'running') {
    const progress = job.progress;
    lines.push(
      `${progress?.stage ?? 'starting'}`,
      progressBar(progress?.fraction ?? 0),
      shownEta(job, now, options.etaAt),
    );
  } else if (job.status === 'failed' || job.status === 'cancelled') {
    lines.push(failureLine(job));
  }
  const embed = new EmbedBuilder()
    .setTitle(STATUS_TITLES[job.status])
    .setDescription(lines.join('\n'))
    .setColor(color)
    .setFooter({ text: `job ${job.id}` });
  if (options.previewName) embed.setImage(`attachment://${options.previewName}`);
  return embed;
}

const INTERNAL_REFERENCE = /^an internal error stopped the job \(log reference ([0-9a-f]{8})\)$/;

/**
 * Why a job ended, for members. Failures of code `error` are internal: only the queue's own
 * "log reference" wording is shown; any other text under that code (a record from an older
 * version, a foreign error) is replaced by the job id, which the worker log is keyed by too.
 */
export function failureLine(job: Pick<JobInfo, 'id' | 'failure'>): string {
  const failure = job.failure;
  if (!failure) return 'no reason given';
  if (failure.code !== 'error') return failure.message;
  const reference = INTERNAL_REFERENCE.exec(failure.message)?.[1];
  return `Something went wrong on our side; it is not something you did. If it keeps happening, tell an admin and quote \`${reference ?? job.id}\`.`;
}

export function cancelButton(jobId: string): ButtonBuilder {
  return new ButtonBuilder()
    .setCustomId(buttonId(ButtonAction.Cancel, jobId))
    .setLabel('Cancel')
    .setStyle(ButtonStyle.Danger);
}

export function voteButton(resultId: string, votes: number): ButtonBuilder {
  return new ButtonBuilder()
    .setCustomId(buttonId(ButtonAction.Vote, resultId))
    .setLabel(`Vote · ${votes}`)
    .setEmoji('👍')
    .setStyle(ButtonStyle.Secondary);
}

export function rerollButton(jobId: string): ButtonBuilder {
  return new ButtonBuilder()
    .setCustomId(buttonId(ButtonAction.Reroll, jobId))
    .setLabel('Reroll')
    .setEmoji('🎲')
    .setStyle(ButtonStyle.Primary);
}

export function buttonRow(...buttons: ButtonBuilder[]): ActionRowBuilder<ButtonBuilder> {
  return new ActionRowBuilder<ButtonBuilder>().addComponents(...buttons);
}

/**
 * An ephemeral reply for a failure. A `UserError` says what was wrong and what to do; anything
 * else is our bug, so the member gets a reference to quote and the details go to the log.
 */
export function errorReply(
  err: unknown,
  reference: string,
): InteractionReplyOptions & { flags: MessageFlags.Ephemeral } {
  const embed = new EmbedBuilder().setColor(Colors.failed);
  if (isUserError(err)) {
    embed.setTitle(truncate(capitalize(err.message), 256));
    if (err.hint) embed.setDescription(truncate(capitalize(err.hint), 4096));
  } else {
    embed
      .setTitle('Something went wrong on our side')
      .setDescription(
        `It is not something you did. If it keeps happening, tell an admin and quote \`${reference}\`.`,
      );
  }
  return { embeds: [embed], flags: MessageFlags.Ephemeral };
}

/** A short ephemeral notice (vote counted, job cancelled). */
export function notice(text: string): InteractionReplyOptions & { flags: MessageFlags.Ephemeral } {
  return { content: text, flags: MessageFlags.Ephemeral };
}

export function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A link that jumps to a message. */
export function messageLink(guildId: string, channelId: string, messageId: string): string {
  return `https://discord.com/channels/${guildId}/${channelId}/${messageId}`;
}
