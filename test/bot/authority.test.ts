// Authority across servers, on the fake Discord with the bot in two servers (A and B): admin
// rights, caps, votes and leaderboards all key on the server of the job or result, never on the
// server a command or button press comes from.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type APIInteraction, PermissionFlagsBits } from 'discord.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../src/jobs/types.ts';
import {
  type ButtonSpec,
  type FakeGuild,
  MEMBER_PERMISSIONS,
  makeButtonPress,
  makeSlashCommand,
  makeUser,
  option,
  type SlashCommandSpec,
  watchOutboundConnections,
} from '../support/fake-discord/index.ts';
import { BotHarness, buttons, solidPng } from './support/harness.ts';

const watch = watchOutboundConnections();
let h: BotHarness;
let serverA: FakeGuild;
let serverB: FakeGuild;

const ADMIN = MEMBER_PERMISSIONS | PermissionFlagsBits.ManageGuild;
const adminOfA = makeUser({ username: 'admin-a' });
const adminOfB = makeUser({ username: 'admin-b' });
const alice = makeUser({ username: 'alice' });
const bob = makeUser({ username: 'bob' });
const carol = makeUser({ username: 'carol' });

beforeAll(async () => {
  h = await BotHarness.start({ fake: { guilds: [{ name: 'server A' }, { name: 'server B' }] } });
  [serverA, serverB] = h.fake.guilds;
});

afterAll(async () => {
  await h?.close();
  watch.stop();
});

beforeEach(() => {
  h.services.jobs.policy = undefined;
});

function context(guild: FakeGuild) {
  return { applicationId: h.fake.applicationId, guild, channel: guild.channels[0] };
}

function command(guild: FakeGuild, spec: SlashCommandSpec): APIInteraction {
  return makeSlashCommand(context(guild), spec);
}

function press(guild: FakeGuild, spec: ButtonSpec): APIInteraction {
  return makeButtonPress(context(guild), spec);
}

function generate(guild: FakeGuild, user = alice, permissions?: bigint) {
  return command(guild, {
    name: 'generate',
    user,
    ...(permissions ? { permissions } : {}),
    options: [option.integer('seed', 7)],
  });
}

function newestJob(): JobInfo {
  return [...h.services.jobs.jobs.values()].at(-1)!;
}

/** The ephemeral answer of a refused interaction: the deferred reply or the follow-up. */
function refusalTitle(id: string, followUpIds: string[]): string | undefined {
  const message = followUpIds.length ? h.fake.messages.get(followUpIds[0]) : h.fake.originalMessage(id);
  return message?.embeds[0]?.title;
}

describe('/cancel across servers', () => {
  it("refuses an admin of server B the job of server A, and lets server A's admin cancel it", async () => {
    const { outcome } = await h.interact(generate(serverA));
    expect(outcome.ok, outcome.error).toBe(true);
    const job = newestJob();
    expect(job.meta.guildId).toBe(serverA.id);

    const fromB = await h.interact(
      command(serverB, {
        name: 'cancel',
        user: adminOfB,
        permissions: ADMIN,
        options: [option.string('job', job.id)],
      }),
    );
    expect(fromB.outcome.ok).toBe(false);
    expect(refusalTitle(fromB.record.raw.id, fromB.record.followUpIds)).toBe(
      `Job ${job.id} belongs to another server`,
    );
    expect(h.services.jobs.jobs.get(job.id)?.status).toBe('queued');

    // The same admin pressing the job's own cancel button, replayed from server B.
    const status = h.fake.originalMessage(fromB.record.raw.id)!;
    const button = await h.interact(
      press(serverB, { customId: `cancel:${job.id}`, message: status, user: adminOfB, permissions: ADMIN }),
    );
    expect(button.outcome.ok).toBe(false);
    expect(h.services.jobs.jobs.get(job.id)?.status).toBe('queued');

    const fromA = await h.interact(
      command(serverA, {
        name: 'cancel',
        user: adminOfA,
        permissions: ADMIN,
        options: [option.string('job', job.id)],
      }),
    );
    expect(fromA.outcome.ok, fromA.outcome.error).toBe(true);
    expect(h.services.jobs.jobs.get(job.id)?.status).toBe('cancelled');
  });
});

describe('caps', () => {
  it("holds a server's admin to the server's cap, so the queue stays open to other servers", async () => {
    // A queue of 8 gives each server 2 (a quarter); admins skip per-user limits only.
    h.services.jobs.policy = { maxQueued: 8, maxActivePerUser: 1, kinds: {} };
    for (let i = 0; i < 2; i++) {
      const { outcome } = await h.interact(generate(serverA, adminOfA, ADMIN));
      expect(outcome.ok, outcome.error).toBe(true);
    }
    const third = await h.interact(generate(serverA, adminOfA, ADMIN));
    expect(third.outcome.ok).toBe(false);
    expect(third.outcome.error).toBe('this server already has 2 jobs queued or running (limit 2)');
    const queued = () => [...h.services.jobs.jobs.values()].filter((j) => j.status === 'queued');
    expect(queued()).toHaveLength(2);
    // The actor the queue saw carried the server and the rights of that server.
    expect(h.services.jobs.admitted.at(-1)).toEqual({
      userId: adminOfA.id,
      guildId: serverA.id,
      isAdmin: true,
    });

    const fromB = await h.interact(generate(serverB, bob));
    expect(fromB.outcome.ok, fromB.outcome.error).toBe(true);
    expect(queued()).toHaveLength(3);
  });
});

describe('votes and leaderboards', () => {
  it("count a vote only in its result's server, and show results only in their own server", async () => {
    // Carol has not generated yet in this file: the bot's per-member cooldown lets her through.
    const { record } = await h.interact(generate(serverA, carol));
    const job = newestJob();
    const gridPath = join(h.dataDir, 'authority-grid.png');
    writeFileSync(gridPath, await solidPng(64, 64));
    h.services.jobs.start(job.id);
    h.services.jobs.complete(job.id, { imagePaths: [], gridPath });
    const result = await h.fake.waitFor('the result message', () => {
      const message = h.fake.originalMessage(record.raw.id);
      return buttons(message).some((b) => b.custom_id === `vote:${job.id}`) ? message : undefined;
    });
    expect(h.services.votes.result(job.id)?.guildId).toBe(serverA.id);

    // A crafted press from server B carrying server A's result id.
    const crafted = await h.interact(
      press(serverB, { customId: `vote:${job.id}`, message: result, user: bob }),
    );
    expect(crafted.outcome.ok).toBe(false);
    expect(crafted.outcome.error).toBe('this result belongs to another server');
    expect(h.services.votes.count(job.id)).toBe(0);

    const real = await h.interact(press(serverA, { customId: `vote:${job.id}`, message: result, user: bob }));
    expect(real.outcome.ok, real.outcome.error).toBe(true);
    expect(h.services.votes.count(job.id)).toBe(1);

    const boardB = await h.interact(command(serverB, { name: 'leaderboard', user: bob }));
    expect(h.fake.originalMessage(boardB.record.raw.id)!.embeds[0].description).toContain('No votes yet');
    const boardA = await h.interact(command(serverA, { name: 'leaderboard', user: bob }));
    expect(h.fake.originalMessage(boardA.record.raw.id)!.embeds[0].description).toContain(`<@${carol.id}>`);
  });
});

describe('network', () => {
  it('never connected anywhere but 127.0.0.1', () => {
    expect(watch.nonLocal()).toEqual([]);
  });
});
