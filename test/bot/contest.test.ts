// The weekly contest against the fake Discord: votes seeded in SQLite, the run the cron calls
// triggered directly, the announcement (winners in order, images uploaded from disk, jump links)
// checked in what the fake received; no second post for a period, whether from a rerun, another
// process or two at once; nothing for guilds without votes or with the contest turned off.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type APIChatInputApplicationCommandInteraction,
  type APIMessage,
  ApplicationCommandOptionType,
  ChannelType,
} from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContestAnnouncer, periodName } from '../../src/bot/contest.ts';
import { DEFAULT_CONTEST_SCHEDULE, nextContestRun } from '../../src/bot/contest-schedule.ts';
import { logger } from '../../src/log.ts';
import { type ResultRecord, VoteStore } from '../../src/store/votes.ts';
import { MEMBER_PERMISSIONS, MessageFlag } from '../support/fake-discord/index.ts';
import { ADMIN_ROLE_ID, BotHarness, solidPng } from './support/harness.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const log = logger('contest-test');
// Mondays 12:00 UTC: the week of 2025-02-24 ends at 2025-03-03 12:00.
const WEEK1_START = Date.UTC(2025, 1, 24, 12);
const WEEK1_END = Date.UTC(2025, 2, 3, 12);
const WEEK2_END = WEEK1_END + 7 * DAY;
const WEEK3_END = WEEK2_END + 7 * DAY;

let h: BotHarness;
let announcer: ContestAnnouncer;
const images = new Map<string, Buffer>();

function announcerOn(votes: VoteStore): ContestAnnouncer {
  return new ContestAnnouncer(h.bot.client, votes, { schedule: DEFAULT_CONTEST_SCHEDULE, log });
}

/** Registers a result with an image on disk and `voters` votes cast at `votedAt`. */
async function seed(
  resultId: string,
  fields: Partial<ResultRecord> & { guildId: string; channelId: string; createdAt: number },
  voters: number,
  votedAt = fields.createdAt + HOUR,
  size: [number, number] = [32, 32],
): Promise<void> {
  const imagePath = join(h.dataDir, `${resultId}.png`);
  const png = await solidPng(size[0], size[1], [size[0] * 4, 100, size[1] * 4]);
  writeFileSync(imagePath, png);
  images.set(resultId, png);
  h.services.votes.registerResult({
    resultId,
    authorId: `author-${resultId}`,
    kind: 'generate',
    title: `result ${resultId}`,
    imagePath,
    messageId: `9${resultId.replace(/\D/g, '').padStart(17, '0')}`,
    ...fields,
  });
  for (let v = 0; v < voters; v++) h.services.votes.toggle(resultId, `voter-${v}`, votedAt + v);
}

function postsTo(channelId: string): APIMessage[] {
  return [...h.fake.messages.values()].filter(
    (m) => m.channel_id === channelId && m.author.id === h.fake.applicationId && !m.webhook_id,
  );
}

function contestCommand(options: APIChatInputApplicationCommandInteraction['data']['options'], admin = true) {
  const raw = h.fake.slashCommand({ name: 'contest', roles: admin ? [ADMIN_ROLE_ID] : [], options });
  const channel = h.fake.guild.channels[1];
  raw.data.resolved = {
    channels: {
      [channel.id]: {
        id: channel.id,
        name: channel.name,
        type: ChannelType.GuildText,
        permissions: MEMBER_PERMISSIONS.toString(),
      },
    },
  } as never;
  return raw;
}

const [faces, sketches, quiet] = [0, 1, 2];

beforeAll(async () => {
  h = await BotHarness.start({
    fake: {
      guilds: [
        {
          name: 'faces',
          roles: [{ id: ADMIN_ROLE_ID, name: 'facestyle admins' }],
          channels: [{ name: 'general' }, { name: 'contest' }],
        },
        { name: 'sketches', channels: [{ name: 'art' }] },
        { name: 'quiet' },
      ],
    },
  });
  // The bot reads this object: /contest sees a schedule, and a restarted bot runs one.
  h.config.contestSchedule = DEFAULT_CONTEST_SCHEDULE;
  announcer = announcerOn(h.services.votes);
  const guild = (i: number) => ({ guildId: h.fake.guilds[i].id, channelId: h.fake.guilds[i].channels[0].id });
  // Week 1 in "faces": r2 most voted; r1 and r3 tie at two votes and r1 is older.
  await seed('r1', { ...guild(faces), createdAt: WEEK1_START + HOUR }, 2, undefined, [30, 20]);
  await seed('r2', { ...guild(faces), createdAt: WEEK1_START + 2 * DAY }, 3, undefined, [40, 30]);
  await seed('r3', { ...guild(faces), createdAt: WEEK1_START + 3 * DAY }, 2, undefined, [20, 10]);
  await seed('r4', { ...guild(faces), createdAt: WEEK1_START + 4 * DAY }, 1);
  // Made the week before: its votes this week do not make it this week's winner.
  await seed('r5', { ...guild(faces), createdAt: WEEK1_START - DAY }, 5, WEEK1_START + DAY);
  // Votes after the period ended count for nothing, so a late rerun ranks the same.
  await seed('r6', { ...guild(faces), createdAt: WEEK1_START + 5 * DAY }, 4, WEEK1_END + HOUR);
  // The most voted of all, but a member's stylised photo: never reposted by a contest.
  await seed('t1', { ...guild(faces), kind: 'toonify', createdAt: WEEK1_START + DAY }, 6);
  await seed('t2', { ...guild(quiet), kind: 'toonify', createdAt: WEEK1_START + DAY }, 3);
  await seed('s1', { ...guild(sketches), createdAt: WEEK1_START + DAY }, 1, undefined, [24, 24]);
  await seed('q1', { ...guild(quiet), createdAt: WEEK1_START + DAY }, 0);
  // A guild the bot has left: its channel is unknown to Discord.
  await seed(
    'x1',
    { guildId: '123456789012345678', channelId: '123456789012345679', createdAt: WEEK1_START + DAY },
    1,
  );
});

afterAll(async () => {
  await h?.close();
});

describe('contest periods', () => {
  it('runs from one scheduled time to the previous one, in UTC', () => {
    expect(announcer.periodAt(new Date(WEEK1_END))).toEqual({ start: WEEK1_START, end: WEEK1_END });
    expect(announcer.periodAt(new Date(WEEK1_END + 2 * DAY))).toEqual({ start: WEEK1_START, end: WEEK1_END });
    expect(announcer.periodAt(new Date(WEEK1_END - 1))).toEqual({
      start: WEEK1_START - 7 * DAY,
      end: WEEK1_START,
    });
    const monthly = new ContestAnnouncer(h.bot.client, h.services.votes, { schedule: '30 6 1 * *', log });
    expect(monthly.periodAt(new Date(Date.UTC(2025, 2, 10)))).toEqual({
      start: Date.UTC(2025, 1, 1, 6, 30),
      end: Date.UTC(2025, 2, 1, 6, 30),
    });
    expect(nextContestRun(DEFAULT_CONTEST_SCHEDULE)!.getUTCDay()).toBe(1);
  });

  it('refuses a schedule with seconds', () => {
    expect(
      () => new ContestAnnouncer(h.bot.client, h.services.votes, { schedule: '*/5 * * * * *', log }),
    ).toThrow(/seconds field/);
  });
});

describe('/contest', () => {
  it('is for admins only', async () => {
    const { record, outcome } = await h.interact(contestCommand([], false));
    expect(outcome.ok).toBe(false);
    expect(h.fake.originalMessage(record.raw.id)!.embeds[0].title).toBe('/contest is for admins only');
    expect(h.services.votes.contestSettings(h.fake.guild.id)).toBeUndefined();
  });

  it('sets the channel of the announcements, privately', async () => {
    const channel = h.fake.guild.channels[1];
    const { record, outcome } = await h.interact(
      contestCommand([{ name: 'channel', type: ApplicationCommandOptionType.Channel, value: channel.id }]),
    );
    expect(outcome.ok).toBe(true);
    const reply = h.fake.originalMessage(record.raw.id)!;
    expect((reply.flags ?? 0) & MessageFlag.Ephemeral).not.toBe(0);
    expect(reply.embeds[0].description).toContain(`announced in <#${channel.id}>`);
    expect(h.services.votes.contestSettings(h.fake.guild.id)).toEqual({
      channelId: channel.id,
      enabled: true,
    });
  });
});

describe('the contest title', () => {
  const week = { start: WEEK1_START, end: WEEK1_START + 7 * DAY };
  it('names what won: blends, faces, or results of several kinds', () => {
    expect(periodName(week, [{ kind: 'blend' }, { kind: 'blend' }])).toBe('Blend of the week');
    expect(periodName(week, [{ kind: 'generate' }])).toBe('Face of the week');
    expect(periodName(week, [{ kind: 'blend' }, { kind: 'generate' }])).toBe('Top results of the week');
    expect(periodName({ start: WEEK1_START, end: WEEK1_START + DAY }, [{ kind: 'blend' }])).toBe(
      'Blend of the day',
    );
    expect(periodName({ start: WEEK1_START, end: WEEK1_START + 3 * DAY }, [{ kind: 'blend' }])).toBe(
      'Contest results',
    );
  });
});

describe('the announcement', () => {
  it('posts the top three of the week with their images and jump links in the chosen channel', async () => {
    const before = h.fake.requestsTo('/channels/:channelId/messages', 'POST').length;
    const report = await announcer.run(new Date(WEEK1_END));
    expect(report.period).toEqual({ start: WEEK1_START, end: WEEK1_END });
    const winners = Object.fromEntries(report.posted.map((p) => [p.guildId, p.winners]));
    expect(winners).toEqual({
      [h.fake.guilds[faces].id]: ['r2', 'r1', 'r3'],
      [h.fake.guilds[sketches].id]: ['s1'],
    });
    expect(report.skipped).toEqual([{ guildId: '123456789012345678', reason: 'failed' }]);

    const [message] = postsTo(h.fake.guilds[faces].channels[1].id);
    // Every winner here is a /generate result: no "Blend of the week" for them.
    expect(message.content).toContain('Face of the week');
    expect(message.content).toContain(`<t:${WEEK1_START / 1000}:f>`);
    expect(message.embeds.map((e) => e.title)).toEqual(['🥇 result r2', '🥈 result r1', '🥉 result r3']);
    expect(message.embeds[0].description).toContain('**3** votes · by <@author-r2>');
    const r2 = h.services.votes.result('r2')!;
    expect(message.embeds[0].description).toContain(
      `https://discord.com/channels/${r2.guildId}/${r2.channelId}/${r2.messageId}`,
    );
    expect(message.attachments.map((a) => [a.filename, a.width, a.height])).toEqual([
      ['contest-1.png', 40, 30],
      ['contest-2.png', 30, 20],
      ['contest-3.png', 20, 10],
    ]);
    for (const [i, id] of ['r2', 'r1', 'r3'].entries()) {
      expect(h.fake.attachmentBytes(message.attachments[i].id)?.equals(images.get(id)!)).toBe(true);
      expect(message.embeds[i].image?.url).toBe(message.attachments[i].url);
    }
    const upload = h.fake.requestsTo('/channels/:channelId/messages', 'POST').at(-1)!;
    expect(upload.auth).toBe('bot');
    expect((upload.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ parse: [] });

    // No contest channel set: the winner's own channel.
    const [sketch] = postsTo(h.fake.guilds[sketches].channels[0].id);
    expect(sketch.embeds.map((e) => e.title)).toEqual(['🥇 result s1']);
    expect(sketch.attachments).toHaveLength(1);
    expect(postsTo(h.fake.guilds[quiet].channels[0].id)).toEqual([]);
    // The guild the bot left fails at fetching its channel, before any post.
    expect(h.fake.requestsTo('/channels/:channelId/messages', 'POST').length - before).toBe(2);
    expect(h.services.votes.announcement(h.fake.guilds[faces].id, WEEK1_END)).toMatchObject({
      channelId: h.fake.guilds[faces].channels[1].id,
      messageId: message.id,
    });
    // The failed one is not recorded as announced: a later run may try again.
    expect(h.services.votes.announcement('123456789012345678', WEEK1_END)).toBeUndefined();
  });

  it('posts nothing for the same period again: not on a rerun, nor from another process', async () => {
    const before = h.fake.requestsTo('/channels/:channelId/messages', 'POST').filter((r) => r.status === 200);
    const again = await announcer.run(new Date(WEEK1_END + DAY));
    expect(again.posted).toEqual([]);
    expect(again.skipped.filter((s) => s.reason === 'announced')).toHaveLength(2);
    const other = VoteStore.open(join(h.dataDir, 'votes.sqlite'));
    try {
      expect((await announcerOn(other).run(new Date(WEEK1_END))).posted).toEqual([]);
    } finally {
      other.close();
    }
    const after = h.fake.requestsTo('/channels/:channelId/messages', 'POST').filter((r) => r.status === 200);
    expect(after.length).toBe(before.length);
  });

  it('posts once when two processes run the same tick at the same moment', async () => {
    const week2 = WEEK1_END + DAY;
    for (const [i, guild] of [faces, sketches].entries()) {
      await seed(
        `w${i}`,
        {
          guildId: h.fake.guilds[guild].id,
          channelId: h.fake.guilds[guild].channels[0].id,
          createdAt: week2,
        },
        2,
      );
    }
    const other = VoteStore.open(join(h.dataDir, 'votes.sqlite'));
    try {
      const reports = await Promise.all([
        announcer.run(new Date(WEEK2_END)),
        announcerOn(other).run(new Date(WEEK2_END)),
      ]);
      const posted = reports.flatMap((r) => r.posted);
      expect(posted.map((p) => p.guildId).sort()).toEqual(
        [h.fake.guilds[faces].id, h.fake.guilds[sketches].id].sort(),
      );
    } finally {
      other.close();
    }
    expect(postsTo(h.fake.guilds[faces].channels[1].id)).toHaveLength(2);
  });

  it('skips a guild whose admins turned the contest off', async () => {
    const { outcome } = await h.interact(
      contestCommand([{ name: 'enabled', type: ApplicationCommandOptionType.Boolean, value: false }]),
    );
    expect(outcome.ok).toBe(true);
    expect(h.services.votes.contestSettings(h.fake.guild.id)).toEqual({
      channelId: h.fake.guild.channels[1].id,
      enabled: false,
    });
    await seed(
      'z1',
      { guildId: h.fake.guild.id, channelId: h.fake.guild.channels[0].id, createdAt: WEEK2_END + DAY },
      1,
    );
    const report = await announcer.run(new Date(WEEK3_END));
    expect(report.posted).toEqual([]);
    expect(report.skipped).toEqual([{ guildId: h.fake.guild.id, reason: 'disabled' }]);
  });
});

describe('in the bot', () => {
  it('runs on the configured schedule from start to stop, and not at all when off', async () => {
    h.config.contestSchedule = '0 18 * * 5';
    await h.bot.stop();
    await h.startBot();
    const next = h.bot.contest!.nextRun()!;
    expect([next.getUTCDay(), next.getUTCHours(), next.getUTCMinutes()]).toEqual([5, 18, 0]);
    h.config.contestSchedule = undefined;
    await h.bot.stop();
    await h.startBot();
    expect(h.bot.contest).toBeUndefined();
    const { record } = await h.interact(contestCommand([]));
    expect(h.fake.originalMessage(record.raw.id)!.embeds[0].description).toContain('turned contests off');
  });
});
