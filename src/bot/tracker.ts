// Keeps each job's Discord message up to date: position and ETA while queued, a progress bar and a
// preview while running (at most one edit per refresh interval), the result at the end. Short jobs
// edit the interaction's reply; when its 15-minute token runs out, and for fine-tunes from the
// start, the job's message is an ordinary channel message edited with the bot token, whose ids are
// kept in the job's meta so a restarted bot picks it up again.
import {
  type Client,
  DiscordAPIError,
  type Message,
  type MessageEditOptions,
  RESTJSONErrorCodes,
} from 'discord.js';
import { DISCORD_UPLOAD_LIMIT } from '../images/encode.ts';
import { isTerminal, type JobEvent, type JobInfo } from '../jobs/types.ts';
import type { Logger } from '../log.ts';
import type { VoteStore } from '../store/votes.ts';
import { renderJob, type ShownPreview, type StatusPayload, VOTABLE_KINDS } from './job-views.ts';
import { blendStyleLabel, formatSeeds, modelLabel } from './replies.ts';
import type { Responder } from './respond.ts';
import type { BotJobs } from './services.ts';

/** Where a job's status is shown. */
export interface StatusTarget {
  readonly uploadLimit: number;
  /** Sends or edits the status message; resolves with where it is. */
  show(payload: StatusPayload): Promise<{ channelId: string; messageId: string }>;
}

function toDiscord(payload: StatusPayload): MessageEditOptions & { content?: string } {
  return {
    content: payload.content ?? '',
    embeds: payload.embeds,
    components: payload.components,
    ...(payload.files ? { files: payload.files, attachments: [] } : {}),
    allowedMentions: { users: payload.mentionUsers ?? [] },
  };
}

function isDiscordError(err: unknown, ...codes: number[]): boolean {
  return err instanceof DiscordAPIError && codes.includes(err.code as number);
}

/** A channel message edited with the bot token; posted on first show if it does not exist (any more). */
export class ChannelMessageTarget implements StatusTarget {
  readonly uploadLimit = DISCORD_UPLOAD_LIMIT;

  constructor(
    private readonly client: Client,
    readonly channelId: string,
    public messageId?: string,
    /** Pinged on a newly posted message, so the owner notices it. */
    private readonly ownerId?: string,
  ) {}

  async show(payload: StatusPayload): Promise<{ channelId: string; messageId: string }> {
    const channel = await this.client.channels.fetch(this.channelId);
    if (!channel?.isSendable())
      throw new Error(`channel ${this.channelId} is not a text channel the bot can post in`);
    if (this.messageId) {
      try {
        await channel.messages.edit(this.messageId, toDiscord(payload));
        return { channelId: this.channelId, messageId: this.messageId };
      } catch (err) {
        // Someone deleted the message: post a new one rather than lose the job's progress.
        if (!isDiscordError(err, RESTJSONErrorCodes.UnknownMessage)) throw err;
      }
    }
    const mention = this.ownerId ? { content: `<@${this.ownerId}>`, mentionUsers: [this.ownerId] } : {};
    const message: Message = await channel.send(
      toDiscord({ ...payload, ...mention }) as Parameters<typeof channel.send>[0],
    );
    this.messageId = message.id;
    return { channelId: this.channelId, messageId: message.id };
  }
}

// Edits stop a little before Discord's 15 minutes, so the last one never races the expiry.
const TOKEN_LIFETIME_MS = 14.5 * 60_000;

/** The interaction's reply while its token lives, then a channel message. */
export class InteractionReplyTarget implements StatusTarget {
  private fallback?: ChannelMessageTarget;

  constructor(
    private readonly respond: Responder,
    private readonly client: Client,
    private readonly tokenLifetimeMs = TOKEN_LIFETIME_MS,
  ) {}

  get uploadLimit(): number {
    return this.fallback ? this.fallback.uploadLimit : this.respond.uploadLimit;
  }

  async show(payload: StatusPayload): Promise<{ channelId: string; messageId: string }> {
    if (!this.fallback) {
      const age = Date.now() - this.respond.interaction.createdTimestamp;
      if (age < this.tokenLifetimeMs) {
        try {
          const message = await this.respond.send(toDiscord(payload));
          return { channelId: message.channelId, messageId: message.id };
        } catch (err) {
          if (!isDiscordError(err, RESTJSONErrorCodes.InvalidWebhookToken)) throw err;
        }
      }
      const interaction = this.respond.interaction;
      if (!interaction.channelId) throw new Error('the interaction has no channel to continue in');
      this.fallback = new ChannelMessageTarget(
        this.client,
        interaction.channelId,
        undefined,
        interaction.user.id,
      );
    }
    return this.fallback.show(payload);
  }
}

interface Watch {
  job: JobInfo;
  target: StatusTarget;
  lastShownAt: number;
  shownPreview?: ShownPreview;
  timer?: NodeJS.Timeout;
  chain: Promise<void>;
  done: boolean;
  resolveDone: () => void;
  finished: Promise<void>;
}

export interface TrackerOptions {
  /** Least time between two edits of one job's message (Discord allows 5 edits per 5 s per channel). */
  refreshMs: number;
  /**
   * How often waiting jobs are re-read: their place in line changes when other jobs start, which
   * sends them no event. Default 15 s.
   */
  positionRefreshMs?: number;
}

export class JobTracker {
  private readonly watches = new Map<string, Watch>();
  private unsubscribe?: () => void;
  private positionTimer?: NodeJS.Timeout;

  constructor(
    private readonly jobs: BotJobs,
    private readonly votes: VoteStore,
    private readonly log: Logger,
    private readonly options: TrackerOptions,
  ) {}

  start(): void {
    this.unsubscribe ??= this.jobs.subscribe((event) => this.onEvent(event));
    this.positionTimer ??= setInterval(
      () => void this.refreshPositions(),
      this.options.positionRefreshMs ?? 15_000,
    );
    this.positionTimer.unref();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearInterval(this.positionTimer);
    this.positionTimer = undefined;
    for (const watch of this.watches.values()) clearTimeout(watch.timer);
    this.watches.clear();
  }

  get watching(): number {
    return this.watches.size;
  }

  /**
   * Shows `job` on `target` now and keeps it updated until the job ends. Resolves once the first
   * status is shown; `finished` resolves after the last edit.
   */
  async watch(job: JobInfo, target: StatusTarget): Promise<{ finished: Promise<void> }> {
    let resolveDone = () => {};
    const finished = new Promise<void>((resolve) => {
      resolveDone = resolve;
    });
    const watch: Watch = {
      job,
      target,
      lastShownAt: 0,
      chain: Promise.resolve(),
      done: false,
      resolveDone,
      finished,
    };
    this.watches.set(job.id, watch);
    // The job may have moved on between submit and now: show its latest state.
    const latest = (await this.jobs.get(job.id)) ?? job;
    if (isTerminal(latest.status)) watch.job = latest;
    await this.flush(watch);
    return { finished };
  }

  /** Re-reads waiting jobs and shows those whose place in line or ETA moved. */
  private async refreshPositions(): Promise<void> {
    for (const watch of this.watches.values()) {
      if (watch.done || watch.job.status !== 'queued') continue;
      const latest = await this.jobs.get(watch.job.id).catch(() => undefined);
      if (!latest || watch.done) continue;
      if (latest.status !== 'queued') continue; // its own events cover any other change
      if (latest.position === watch.job.position && latest.etaSeconds === watch.job.etaSeconds) continue;
      watch.job = latest;
      void this.flush(watch);
    }
  }

  private onEvent(event: JobEvent): void {
    const watch = this.watches.get(event.job.id);
    if (!watch || watch.done) return;
    watch.job = event.job;
    if (isTerminal(event.job.status)) {
      clearTimeout(watch.timer);
      void this.flush(watch);
      return;
    }
    if (watch.timer) return;
    const wait = Math.max(0, watch.lastShownAt + this.options.refreshMs - Date.now());
    watch.timer = setTimeout(() => {
      watch.timer = undefined;
      void this.flush(watch);
    }, wait);
  }

  /** Shows the watch's current job state after any edit in flight. */
  private flush(watch: Watch): Promise<void> {
    watch.chain = watch.chain
      .then(() => this.show(watch))
      .catch((err) => {
        this.log.warn('could not update a job message', { job: watch.job.id, error: (err as Error).message });
      });
    return watch.chain;
  }

  private async show(watch: Watch): Promise<void> {
    if (watch.done) return;
    const job = watch.job;
    const terminal = isTerminal(job.status);
    if (terminal) watch.done = true;
    const votable = job.status === 'completed' && VOTABLE_KINDS.has(job.kind);
    try {
      if (votable) this.registerResult(job);
      const payload = await renderJob(job, {
        uploadLimit: watch.target.uploadLimit,
        shownPreview: watch.shownPreview,
        votes: votable ? this.votes.count(job.id) : undefined,
      });
      const where = await watch.target.show(payload);
      watch.shownPreview = payload.preview;
      watch.lastShownAt = Date.now();
      if (votable) this.registerResult(job, where);
    } finally {
      if (terminal) {
        this.watches.delete(job.id);
        watch.resolveDone();
      }
    }
  }

  private registerResult(job: JobInfo, where?: { channelId: string; messageId: string }): void {
    const image =
      job.kind === 'generate'
        ? (job.result?.gridPath ?? job.result?.imagePaths[0])
        : job.kind === 'blend'
          ? job.result?.gridPath
          : job.kind === 'toonify'
            ? // Not the grid: contests repost this image, and the grid holds the member's photo.
              job.result?.stylisedPath
            : undefined;
    this.votes.registerResult({
      resultId: job.id,
      guildId: job.meta.guildId ?? '',
      channelId: where?.channelId ?? job.meta.channelId ?? '',
      messageId: where?.messageId,
      authorId: job.userId,
      kind: job.kind,
      title: resultTitle(job),
      imagePath: image,
      createdAt: job.createdAt,
    });
  }
}

/** One line naming a result on the leaderboard. */
function resultTitle(job: JobInfo): string {
  if (job.kind === 'generate')
    return `seeds ${formatSeeds(job.payload.seeds)} · ${modelLabel(job.payload.checkpoint)} · psi ${job.payload.psi}`;
  if (job.kind === 'blend')
    return `${modelLabel(job.payload.base)} × ${blendStyleLabel(job)} at ${job.payload.layer}px`;
  if (job.kind === 'toonify')
    return `toonify · ${job.payload.blend ? modelLabel(job.payload.blend) : `${modelLabel(job.payload.style ?? '')} at ${job.payload.layer}px`}`;
  return job.kind;
}
