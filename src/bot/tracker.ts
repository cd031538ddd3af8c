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
import { blendStyleLabel, formatSeeds, messageLink, modelLabel } from './replies.ts';
import type { Responder } from './respond.ts';
import type { BotJobs } from './services.ts';

/** Where a job's status is shown. */
export interface StatusTarget {
  readonly uploadLimit: number;
  /** Sends or edits the status message; resolves with where it is. */
  show(payload: StatusPayload): Promise<{ channelId: string; messageId: string }>;
  /**
   * A new message for the job's owner, after the status message: `private` ones only where the
   * target can make them (an interaction's ephemeral follow-up), skipped elsewhere; `ping` ones
   * mention the owner, which notifies them (an edit never does).
   */
  tell?(text: string, options: { private?: boolean; ping?: string }): Promise<void>;
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

  async tell(text: string, options: { private?: boolean; ping?: string }): Promise<void> {
    // A channel has no message only one member sees.
    if (options.private) return;
    const channel = await this.client.channels.fetch(this.channelId);
    if (!channel?.isSendable()) return;
    await channel.send({
      content: text,
      allowedMentions: { users: options.ping ? [options.ping] : [] },
      ...(this.messageId ? { reply: { messageReference: this.messageId, failIfNotExists: false } } : {}),
    });
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

  async tell(text: string, options: { private?: boolean; ping?: string }): Promise<void> {
    const age = Date.now() - this.respond.interaction.createdTimestamp;
    if (!this.fallback && age < this.tokenLifetimeMs) {
      await this.respond.followUp(
        { content: text, allowedMentions: { users: options.ping ? [options.ping] : [] } },
        options.private ? 'ephemeral' : 'public',
      );
      return;
    }
    await this.fallback?.tell(text, options);
  }
}

interface Watch {
  job: JobInfo;
  target: StatusTarget;
  lastShownAt: number;
  shownPreview?: ShownPreview;
  /** What the message looks like now, to skip edits that change nothing a member sees. */
  shownLook?: string;
  /** The ETA the message shows, kept while the estimate stays near it. */
  shownEtaAt?: number;
  /** Ends the grace before a first "Queued" when the job moves on. */
  wake?: () => void;
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
  /** Owners are pinged when a job that took longer than this from submission ends. Default 20 s. */
  pingAfterMs?: number;
}

/** Jobs whose ETA moves by less than this (or 10 % of what is left) keep the ETA they show. */
const ETA_STEADY_MS = 15_000;

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
  async watch(
    job: JobInfo,
    target: StatusTarget,
    options: { queuedGraceMs?: number } = {},
  ): Promise<{ finished: Promise<void> }> {
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
    // Most jobs start at once: "Queued" for a fraction of a second is noise. The reply keeps
    // "thinking" a moment; an event in the meantime shows the job as it is then.
    if (options.queuedGraceMs && watch.job.status === 'queued') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.queuedGraceMs);
        watch.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      watch.wake = undefined;
    }
    await this.flush(watch);
    return { finished };
  }

  /** Re-reads waiting jobs and shows those whose place in line or ETA moved. */
  private async refreshPositions(): Promise<void> {
    for (const watch of this.watches.values()) {
      // In its grace a job shows nothing yet; watch() shows it when the grace ends.
      if (watch.done || watch.job.status !== 'queued' || watch.wake) continue;
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
    if (event.job.status !== 'queued') watch.wake?.();
    else if (watch.wake) return;
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
        etaAt: terminal ? undefined : this.steadyEta(watch, job),
      });
      const look = lookOf(payload);
      if (!terminal && !payload.files?.length && look === watch.shownLook) return;
      const where = await watch.target.show(payload);
      watch.shownLook = look;
      watch.shownPreview = payload.preview;
      watch.lastShownAt = Date.now();
      if (votable) this.registerResult(job, where);
      if (terminal) await this.tellOwner(watch, job, where);
    } finally {
      if (terminal) {
        this.watches.delete(job.id);
        watch.resolveDone();
      }
    }
  }

  /** When the job is expected to end: the one shown, unless the estimate moved well away from it. */
  private steadyEta(watch: Watch, job: JobInfo): number | undefined {
    if (job.etaSeconds === null || job.etaSeconds === undefined || !Number.isFinite(job.etaSeconds))
      return undefined;
    const now = Date.now();
    const etaAt = now + job.etaSeconds * 1000;
    const shown = watch.shownEtaAt;
    const tolerance = Math.max(ETA_STEADY_MS, 0.1 * job.etaSeconds * 1000);
    if (shown !== undefined && shown > now && Math.abs(etaAt - shown) < tolerance) return shown;
    watch.shownEtaAt = etaAt;
    return etaAt;
  }

  /**
   * After the last edit: privately, which face of how many a toonify used; and a ping for the
   * owner of a job that took a while (an edited message notifies no one).
   */
  private async tellOwner(
    watch: Watch,
    job: JobInfo,
    where: { channelId: string; messageId: string },
  ): Promise<void> {
    const tell = watch.target.tell?.bind(watch.target);
    if (!tell) return;
    const notes: Array<Promise<void>> = [];
    if (job.kind === 'toonify' && job.status === 'completed' && job.result && job.result.face.count > 1) {
      const { index, count } = job.result.face;
      const which = index === 0 ? 'the largest' : `face ${index} (0 is the largest)`;
      notes.push(
        tell(
          `Your photo shows ${count} faces; I used ${which}. To pick another, run /toonify again with \`face:\` from 0 (largest) to ${count - 1} (smallest).`,
          { private: true },
        ),
      );
    }
    const took = (job.finishedAt ?? Date.now()) - job.createdAt;
    if (
      (job.status === 'completed' || job.status === 'failed') &&
      took > (this.options.pingAfterMs ?? 20_000)
    ) {
      const guildId = job.meta.guildId ?? '';
      const link = messageLink(guildId, where.channelId, where.messageId);
      const what = job.status === 'completed' ? 'is ready' : 'could not finish';
      notes.push(tell(`<@${job.userId}> your ${job.kind} ${what}: ${link}`, { ping: job.userId }));
    }
    for (const result of await Promise.allSettled(notes)) {
      if (result.status === 'rejected')
        this.log.warn('could not tell a job owner', { job: job.id, error: (result.reason as Error).message });
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

/** Everything a member sees of a status payload, to compare two of them. */
function lookOf(payload: StatusPayload): string {
  return JSON.stringify({
    content: payload.content ?? '',
    embeds: payload.embeds.map((e) => e.toJSON()),
    components: payload.components.map((c) => c.toJSON()),
    preview: payload.preview?.key,
  });
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
