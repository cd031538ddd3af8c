// Votes on results (generated grids, blends), the per-guild leaderboard and the weekly contest's
// settings and announcements, in SQLite. A vote is a row keyed by (result, member): the primary key
// makes a second vote impossible whatever the timing, and a toggle is one IMMEDIATE transaction
// (delete, else insert), so double clicks, concurrent clicks, several bot processes on one file and
// restarts cannot inflate a tally. An announcement is claimed by inserting its (guild, period) row
// first, for the same reason: two processes cannot both post it.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../errors.ts';

export interface ResultRecord {
  /** The job id of the result; what `vote:<resultId>` buttons carry. */
  resultId: string;
  guildId: string;
  channelId: string;
  /** The message showing the result, for jump links; set once it is posted. */
  messageId?: string;
  authorId: string;
  kind: string;
  /** One line: "seeds 1-4 · ffhq256 · psi 0.7". */
  title: string;
  /** The result image on disk, for contest announcements (CDN links expire). */
  imagePath?: string;
  createdAt: number;
}

export interface RankedResult extends ResultRecord {
  votes: number;
}

export interface RankedCreator {
  authorId: string;
  votes: number;
  results: number;
}

export interface ContestSettings {
  /** Where announcements go; absent: the channel of the winning result. */
  channelId?: string;
  enabled: boolean;
}

/** A contest period: votes cast from `start` (inclusive) to `end` (exclusive), ms since epoch. */
export interface ContestPeriod {
  start: number;
  end: number;
}

export interface ContestAnnouncement {
  guildId: string;
  period: ContestPeriod;
  channelId?: string;
  messageId?: string;
  postedAt?: number;
}

export interface VoteOutcome {
  /** Whether the member's vote now counts (false: the click removed it). */
  voted: boolean;
  votes: number;
}

interface ResultRow {
  result_id: string;
  guild_id: string;
  channel_id: string;
  message_id: string | null;
  author_id: string;
  kind: string;
  title: string;
  image_path: string | null;
  created_at: number;
  votes?: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS results (
    result_id  TEXT PRIMARY KEY,
    guild_id   TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    message_id TEXT,
    author_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    image_path TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS results_by_guild ON results (guild_id, created_at);
  CREATE TABLE IF NOT EXISTS votes (
    result_id TEXT NOT NULL REFERENCES results (result_id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    voted_at  INTEGER NOT NULL,
    PRIMARY KEY (result_id, member_id)
  );
  CREATE TABLE IF NOT EXISTS contest_settings (
    guild_id   TEXT PRIMARY KEY,
    channel_id TEXT,
    enabled    INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS contest_announcements (
    guild_id     TEXT NOT NULL,
    period_end   INTEGER NOT NULL,
    period_start INTEGER NOT NULL,
    claim        TEXT NOT NULL,
    claimed_at   INTEGER NOT NULL,
    channel_id   TEXT,
    message_id   TEXT,
    posted_at    INTEGER,
    PRIMARY KEY (guild_id, period_end)
  );
`;

// A toonify result is a member's own likeness: it stays in the message they asked for and is never
// reposted to a whole server by a contest.
const NOT_IN_CONTESTS = ['toonify'].map((kind) => `'${kind}'`).join(', ');

// Another process may hold the write lock for a moment; wait rather than fail the click.
const BUSY_TIMEOUT_MS = 5_000;

function fromRow(row: ResultRow): RankedResult {
  return {
    resultId: row.result_id,
    guildId: row.guild_id,
    channelId: row.channel_id,
    messageId: row.message_id ?? undefined,
    authorId: row.author_id,
    kind: row.kind,
    title: row.title,
    imagePath: row.image_path ?? undefined,
    createdAt: row.created_at,
    votes: row.votes ?? 0,
  };
}

export class VoteStore {
  private readonly db: Database.Database;
  private readonly statements;

  private constructor(file: string) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
    this.statements = {
      upsertResult: this.db.prepare(`
        INSERT INTO results (result_id, guild_id, channel_id, message_id, author_id, kind, title, image_path, created_at)
        VALUES (@resultId, @guildId, @channelId, @messageId, @authorId, @kind, @title, @imagePath, @createdAt)
        ON CONFLICT (result_id) DO UPDATE SET
          channel_id = excluded.channel_id,
          message_id = COALESCE(excluded.message_id, results.message_id),
          title = excluded.title,
          image_path = COALESCE(excluded.image_path, results.image_path)`),
      result: this.db.prepare<[string], ResultRow>(`SELECT * FROM results WHERE result_id = ?`),
      deleteVote: this.db.prepare<[string, string]>(
        `DELETE FROM votes WHERE result_id = ? AND member_id = ?`,
      ),
      insertVote: this.db.prepare<[string, string, number]>(
        `INSERT INTO votes (result_id, member_id, voted_at) VALUES (?, ?, ?)`,
      ),
      count: this.db.prepare<[string], { n: number }>(`SELECT COUNT(*) AS n FROM votes WHERE result_id = ?`),
      topResults: this.db.prepare<[string, number, number], ResultRow>(`
        SELECT r.*, COUNT(v.member_id) AS votes FROM results r JOIN votes v ON v.result_id = r.result_id
        WHERE r.guild_id = ? AND r.created_at >= ?
        GROUP BY r.result_id ORDER BY votes DESC, r.created_at ASC LIMIT ?`),
      topCreators: this.db.prepare<
        [string, number, number],
        { author_id: string; votes: number; results: number }
      >(`
        SELECT r.author_id, COUNT(v.member_id) AS votes, COUNT(DISTINCT r.result_id) AS results
        FROM results r JOIN votes v ON v.result_id = r.result_id
        WHERE r.guild_id = ? AND r.created_at >= ?
        GROUP BY r.author_id ORDER BY votes DESC, MIN(r.created_at) ASC LIMIT ?`),
      periodTop: this.db.prepare<[string, number, number, number, number, number], ResultRow>(`
        SELECT r.*, COUNT(v.member_id) AS votes FROM results r JOIN votes v ON v.result_id = r.result_id
        WHERE r.guild_id = ? AND r.created_at >= ? AND r.created_at < ? AND v.voted_at >= ? AND v.voted_at < ?
          AND r.kind NOT IN (${NOT_IN_CONTESTS})
        GROUP BY r.result_id ORDER BY votes DESC, r.created_at ASC, r.result_id ASC LIMIT ?`),
      guildsWithVotes: this.db.prepare<[number, number, number, number], { guild_id: string }>(`
        SELECT DISTINCT r.guild_id FROM results r JOIN votes v ON v.result_id = r.result_id
        WHERE r.created_at >= ? AND r.created_at < ? AND v.voted_at >= ? AND v.voted_at < ?
          AND r.kind NOT IN (${NOT_IN_CONTESTS})
        ORDER BY r.guild_id`),
      contestSettings: this.db.prepare<[string], { channel_id: string | null; enabled: number }>(
        `SELECT channel_id, enabled FROM contest_settings WHERE guild_id = ?`,
      ),
      setContestSettings: this.db.prepare(`
        INSERT INTO contest_settings (guild_id, channel_id, enabled, updated_by, updated_at)
        VALUES (@guildId, @channelId, @enabled, @by, @now)
        ON CONFLICT (guild_id) DO UPDATE SET
          channel_id = COALESCE(excluded.channel_id, contest_settings.channel_id),
          enabled = excluded.enabled, updated_by = excluded.updated_by, updated_at = excluded.updated_at`),
      claimAnnouncement: this.db.prepare(`
        INSERT INTO contest_announcements (guild_id, period_end, period_start, claim, claimed_at)
        VALUES (@guildId, @end, @start, @claim, @now)
        ON CONFLICT (guild_id, period_end) DO UPDATE SET claim = excluded.claim, claimed_at = excluded.claimed_at
        WHERE contest_announcements.posted_at IS NULL AND contest_announcements.claimed_at < @staleBefore`),
      completeAnnouncement: this.db.prepare(`
        UPDATE contest_announcements SET channel_id = @channelId, message_id = @messageId, posted_at = @now
        WHERE guild_id = @guildId AND period_end = @end AND claim = @claim`),
      releaseAnnouncement: this.db.prepare<[string, number, string]>(
        `DELETE FROM contest_announcements WHERE guild_id = ? AND period_end = ? AND claim = ? AND posted_at IS NULL`,
      ),
      announcement: this.db.prepare<
        [string, number],
        {
          period_start: number;
          period_end: number;
          channel_id: string | null;
          message_id: string | null;
          posted_at: number | null;
        }
      >(`SELECT * FROM contest_announcements WHERE guild_id = ? AND period_end = ?`),
    };
  }

  /** Opens (creating if needed) the vote database; `:memory:` for a throwaway one. */
  static open(file: string): VoteStore {
    return new VoteStore(file);
  }

  /** Records a result members can vote on, or updates where it is shown. */
  registerResult(result: ResultRecord): void {
    this.statements.upsertResult.run({ messageId: null, imagePath: null, ...result });
  }

  result(resultId: string): RankedResult | undefined {
    const row = this.statements.result.get(resultId);
    return row ? { ...fromRow(row), votes: this.count(resultId) } : undefined;
  }

  count(resultId: string): number {
    return this.statements.count.get(resultId)?.n ?? 0;
  }

  /**
   * Adds the member's vote, or removes it if it was there. With `guildId` (what a click carries),
   * the result must belong to that server: a vote counts only in the server of its result.
   */
  toggle(resultId: string, memberId: string, now = Date.now(), guildId?: string): VoteOutcome {
    const run = this.db.transaction((): VoteOutcome => {
      const result = this.statements.result.get(resultId);
      if (result && guildId !== undefined && result.guild_id !== guildId)
        throw new UserError('this result belongs to another server', 'vote on it in its own server');
      if (!result) {
        throw new UserError(
          'this result is no longer in the vote records',
          'vote on a newer result, or make one with /generate',
        );
      }
      if (result.author_id === memberId) throw new UserError('you cannot vote for your own result');
      const removed = this.statements.deleteVote.run(resultId, memberId).changes > 0;
      if (!removed) this.statements.insertVote.run(resultId, memberId, now);
      return { voted: !removed, votes: this.statements.count.get(resultId)?.n ?? 0 };
    });
    // IMMEDIATE takes the write lock before reading, so two processes cannot both see "no vote".
    return run.immediate();
  }

  /** The most voted results of a guild made since `since` (ms since epoch). */
  topResults(guildId: string, options: { since?: number; limit?: number } = {}): RankedResult[] {
    return this.statements.topResults.all(guildId, options.since ?? 0, options.limit ?? 10).map(fromRow);
  }

  /** Members whose results got the most votes in a guild since `since`. */
  topCreators(guildId: string, options: { since?: number; limit?: number } = {}): RankedCreator[] {
    return this.statements.topCreators
      .all(guildId, options.since ?? 0, options.limit ?? 10)
      .map((row) => ({ authorId: row.author_id, votes: row.votes, results: row.results }));
  }

  /**
   * A guild's most voted results of a contest period: made in the period, ranked by the votes cast
   * in it, ties to the earlier result. Later votes do not count, so a rerun ranks the same.
   */
  periodTop(guildId: string, period: ContestPeriod, limit = 3): RankedResult[] {
    const { start, end } = period;
    return this.statements.periodTop.all(guildId, start, end, start, end, limit).map(fromRow);
  }

  /** Guilds with at least one vote in the period (as `periodTop` counts them). */
  guildsWithVotes(period: ContestPeriod): string[] {
    const { start, end } = period;
    return this.statements.guildsWithVotes.all(start, end, start, end).map((row) => row.guild_id);
  }

  /** A guild's contest settings; undefined until an admin set them. */
  contestSettings(guildId: string): ContestSettings | undefined {
    const row = this.statements.contestSettings.get(guildId);
    return row ? { channelId: row.channel_id ?? undefined, enabled: row.enabled === 1 } : undefined;
  }

  /** Sets where the guild's announcements go (a missing channel keeps the one set before) and whether it has them. */
  setContestSettings(
    guildId: string,
    settings: { channelId?: string; enabled: boolean },
    by: string,
    now = Date.now(),
  ): ContestSettings {
    this.statements.setContestSettings.run({
      guildId,
      channelId: settings.channelId ?? null,
      enabled: settings.enabled ? 1 : 0,
      by,
      now,
    });
    return this.contestSettings(guildId)!;
  }

  /**
   * Claims the announcement of a guild's period for `claim`. False when it was posted, or another
   * process claimed it less than `staleMs` ago (one that crashed mid-post frees it after that).
   */
  claimAnnouncement(
    guildId: string,
    period: ContestPeriod,
    claim: string,
    options: { now?: number; staleMs: number },
  ): boolean {
    const now = options.now ?? Date.now();
    const { changes } = this.statements.claimAnnouncement.run({
      guildId,
      start: period.start,
      end: period.end,
      claim,
      now,
      staleBefore: now - options.staleMs,
    });
    return changes > 0;
  }

  /** Records where the claimed announcement was posted; from now on nobody posts it again. */
  completeAnnouncement(
    guildId: string,
    period: ContestPeriod,
    claim: string,
    where: { channelId: string; messageId: string },
    now = Date.now(),
  ): void {
    this.statements.completeAnnouncement.run({ guildId, end: period.end, claim, ...where, now });
  }

  /** Gives up a claim whose post failed, so a later run may try again. */
  releaseAnnouncement(guildId: string, period: ContestPeriod, claim: string): void {
    this.statements.releaseAnnouncement.run(guildId, period.end, claim);
  }

  announcement(guildId: string, periodEnd: number): ContestAnnouncement | undefined {
    const row = this.statements.announcement.get(guildId, periodEnd);
    if (!row) return undefined;
    return {
      guildId,
      period: { start: row.period_start, end: row.period_end },
      channelId: row.channel_id ?? undefined,
      messageId: row.message_id ?? undefined,
      postedAt: row.posted_at ?? undefined,
    };
  }

  close(): void {
    this.db.close();
  }
}
