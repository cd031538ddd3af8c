// The contest: on a cron schedule (UTC), each guild whose results got votes since the previous
// scheduled time gets an announcement of its top results, with the images uploaded from disk (CDN
// links of the original messages expire) and links back to them. A period runs from one scheduled
// time to the next, so every process computes the same periods from the schedule alone; the
// announcement of a (guild, period) is claimed in SQLite before it is posted, so a restart, a
// catch-up run and a second bot process never post it twice.
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { type AttachmentBuilder, type Client, EmbedBuilder } from 'discord.js';
import cron, { type ScheduledTask } from 'node-cron';
import { DISCORD_UPLOAD_LIMIT } from '../images/encode.ts';
import type { Logger } from '../log.ts';
import type { ContestPeriod, RankedResult, VoteStore } from '../store/votes.ts';
import { CONTEST_TIMEZONE, contestScheduleProblem } from './contest-schedule.ts';
import { uploadFor } from './job-views.ts';
import { Colors, discordTimestamp, messageLink, truncate } from './replies.ts';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
// How far back the previous scheduled time is looked for: a yearly schedule still has one.
const MAX_LOOKBACK_DAYS = 400;
const MEDALS = ['🥇', '🥈', '🥉'];

export interface ContestOptions {
  /** Cron expression, in UTC. */
  schedule: string;
  log: Logger;
  /** Results shown per announcement. */
  winners?: number;
  /** At start, a period that ended at most this long ago and was not announced is announced then. */
  catchUpMs?: number;
  /** A claim older than this whose post never finished (a crash) may be taken over. */
  staleClaimMs?: number;
}

export interface ContestReport {
  period?: ContestPeriod;
  posted: Array<{ guildId: string; channelId: string; messageId: string; winners: string[] }>;
  /** Guilds with votes that got no announcement, and why. */
  skipped: Array<{ guildId: string; reason: 'disabled' | 'announced' | 'failed' }>;
}

export class ContestAnnouncer {
  private readonly task: ScheduledTask;
  private readonly fields: { hour: number[]; minute: number[]; month: number[] };
  private readonly winners: number;
  private readonly catchUpMs: number;
  private readonly staleClaimMs: number;
  private readonly log: Logger;
  private running?: Promise<unknown>;

  constructor(
    private readonly client: Client,
    private readonly votes: VoteStore,
    options: ContestOptions,
  ) {
    const problem = contestScheduleProblem(options.schedule);
    if (problem) throw new Error(problem);
    const fields = cron.parse(options.schedule);
    this.fields = {
      hour: [...fields.hour].sort((a, b) => b - a),
      minute: [...fields.minute].sort((a, b) => b - a),
      month: fields.month,
    };
    this.log = options.log;
    this.winners = options.winners ?? 3;
    this.catchUpMs = options.catchUpMs ?? DAY_MS;
    this.staleClaimMs = options.staleClaimMs ?? 10 * MINUTE_MS;
    // Created stopped: `match` and `getNextRun` work before start, and tests never start it.
    // The slot node-cron passes is the scheduled minute; a late heartbeat must still count it.
    const onTick = (context: { date: Date }) =>
      this.track(this.run(new Date(Math.max(context.date.getTime(), Date.now()))));
    this.task = cron.createTask(options.schedule, onTick, {
      name: 'contest announcement',
      timezone: CONTEST_TIMEZONE,
      noOverlap: true,
    });
  }

  /** Runs on the schedule, and announces a period missed while the bot was down, if recent. */
  start(): void {
    this.task.start();
    const end = this.previousRun(Date.now());
    if (end !== undefined && Date.now() - end <= this.catchUpMs) void this.track(this.run(new Date()));
  }

  /** Stops the schedule and waits for a run in progress. */
  async stop(): Promise<void> {
    await this.task.destroy();
    await this.running;
  }

  nextRun(): Date | undefined {
    return this.task.getNextRuns(1)[0];
  }

  /** The period that ended at the latest scheduled time at or before `at`. */
  periodAt(at: Date): ContestPeriod | undefined {
    const end = this.previousRun(at.getTime());
    const start = end === undefined ? undefined : this.previousRun(end - 1);
    return end === undefined || start === undefined ? undefined : { start, end };
  }

  /**
   * What the schedule calls: announces the period that ended at the latest scheduled time at or
   * before `at` in every guild with votes in it. Safe to call again, or from another process.
   */
  async run(at: Date = new Date()): Promise<ContestReport> {
    const report: ContestReport = { posted: [], skipped: [] };
    const period = this.periodAt(at);
    if (!period) {
      this.log.warn('contest schedule has no previous run to count votes from', {
        schedule: this.task.getPattern(),
      });
      return report;
    }
    report.period = period;
    for (const guildId of this.votes.guildsWithVotes(period)) {
      const settings = this.votes.contestSettings(guildId);
      if (settings && !settings.enabled) {
        report.skipped.push({ guildId, reason: 'disabled' });
        continue;
      }
      const claim = randomBytes(8).toString('hex');
      if (!this.votes.claimAnnouncement(guildId, period, claim, { staleMs: this.staleClaimMs })) {
        report.skipped.push({ guildId, reason: 'announced' });
        continue;
      }
      const winners = this.votes.periodTop(guildId, period, this.winners);
      try {
        const where = await this.post(winners, period, settings?.channelId);
        this.votes.completeAnnouncement(guildId, period, claim, where);
        report.posted.push({ guildId, ...where, winners: winners.map((w) => w.resultId) });
        this.log.info('contest announced', { guild: guildId, ...where, periodEnd: period.end });
      } catch (err) {
        this.votes.releaseAnnouncement(guildId, period, claim);
        report.skipped.push({ guildId, reason: 'failed' });
        this.log.error('contest announcement failed', {
          guild: guildId,
          periodEnd: period.end,
          error: (err as Error).message,
        });
      }
    }
    return report;
  }

  private track<T>(run: Promise<T>): Promise<T | undefined> {
    const tracked = run.catch((err) => {
      this.log.error('contest run failed', { error: (err as Error).message });
      return undefined;
    });
    this.running = tracked;
    return tracked;
  }

  /** The latest scheduled time at or before `before` (whole minutes, UTC). */
  private previousRun(before: number): number | undefined {
    const today = Math.floor(before / DAY_MS) * DAY_MS;
    for (let day = 0; day <= MAX_LOOKBACK_DAYS; day++) {
      const midnight = today - day * DAY_MS;
      if (!this.fields.month.includes(new Date(midnight).getUTCMonth() + 1)) continue;
      // Day of month and day of week follow node-cron's own rules, through `match`.
      for (const hour of this.fields.hour) {
        for (const minute of this.fields.minute) {
          const at = midnight + hour * 3_600_000 + minute * MINUTE_MS;
          if (at <= before && this.task.match(new Date(at))) return at;
        }
      }
    }
    return undefined;
  }

  /** Posts the announcement to the guild's contest channel, else where the winner was shown. */
  private async post(
    winners: RankedResult[],
    period: ContestPeriod,
    channelId: string | undefined,
  ): Promise<{ channelId: string; messageId: string }> {
    const { embeds, files } = await announcement(winners, period);
    const candidates = [...new Set([channelId, winners[0].channelId].filter((id): id is string => !!id))];
    let lastError: unknown;
    for (const id of candidates) {
      try {
        const channel = await this.client.channels.fetch(id);
        if (!channel?.isSendable())
          throw new Error(`channel ${id} is not a text channel the bot can post in`);
        const message = await channel.send({
          content: `🏆 **${periodName(period, winners)}**: ${discordTimestamp(period.start, 'f')} to ${discordTimestamp(period.end, 'f')}. Congratulations <@${winners[0].authorId}>!`,
          embeds,
          files,
          // Winners are named, not pinged: an announcement should not wake people up.
          allowedMentions: { parse: [] },
        });
        return { channelId: id, messageId: message.id };
      } catch (err) {
        // A deleted contest channel or lost permissions: fall back rather than skip the week.
        lastError = err;
        this.log.warn('could not post the contest in a channel', {
          channel: id,
          error: (err as Error).message,
        });
      }
    }
    throw lastError;
  }
}

/** What the winners are, by kind: "Blend" only when every winner is a blend. */
const WINNER_NOUNS: Record<string, string> = { blend: 'Blend', generate: 'Face' };

/** "Blend of the week", "Face of the day", "Top results of the week"; "Contest results" otherwise. */
export function periodName(period: ContestPeriod, winners: ReadonlyArray<{ kind: string }> = []): string {
  const days = Math.round((period.end - period.start) / DAY_MS);
  const span = days === 7 ? 'the week' : days === 1 ? 'the day' : undefined;
  if (!span) return 'Contest results';
  const kinds = new Set(winners.map((w) => w.kind));
  const noun = kinds.size === 1 ? WINNER_NOUNS[[...kinds][0]] : undefined;
  return `${noun ?? 'Top results'} of ${span}`;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** One embed per winner, each with its image; the images share the message's upload limit. */
async function announcement(
  winners: RankedResult[],
  period: ContestPeriod,
): Promise<{ embeds: EmbedBuilder[]; files: AttachmentBuilder[] }> {
  const embeds: EmbedBuilder[] = [];
  const files: AttachmentBuilder[] = [];
  const perImage = Math.floor(DISCORD_UPLOAD_LIMIT / winners.length);
  for (const [i, result] of winners.entries()) {
    const lines = [`**${result.votes}** vote${result.votes === 1 ? '' : 's'} · by <@${result.authorId}>`];
    if (result.messageId)
      lines.push(
        `[Jump to the original](${messageLink(result.guildId, result.channelId, result.messageId)})`,
      );
    const embed = new EmbedBuilder()
      .setColor(i === 0 ? 0xf1c40f : Colors.done)
      .setTitle(truncate(`${MEDALS[i] ?? `${i + 1}.`} ${result.title}`, 256))
      .setDescription(lines.join('\n'))
      .setTimestamp(result.createdAt);
    if (result.imagePath && (await exists(result.imagePath))) {
      const file = await uploadFor(result.imagePath, `contest-${i + 1}`, perImage);
      files.push(file);
      embed.setImage(`attachment://${file.name}`);
    } else {
      // Artifact cleanup may have removed it; the jump link still shows the original.
      embed.setFooter({ text: 'image no longer on disk' });
    }
    embeds.push(embed);
  }
  if (embeds.length === 0) throw new Error(`no results with votes from ${period.start} to ${period.end}`);
  return { embeds, files };
}
