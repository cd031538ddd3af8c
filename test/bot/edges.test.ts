// The bot at Discord's edges: interaction tokens that expire under a long queue, results over the
// upload limit, registration, an acknowledgement safety net racing the handlers, and logs that
// never carry the token.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationCommandOptionType, PermissionFlagsBits } from 'discord.js';
import sharp from 'sharp';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerCommands } from '../../src/bot/register.ts';
import { logger } from '../../src/log.ts';
import { makeUser } from '../support/fake-discord/index.ts';
import { BotHarness, noisyPng, solidPng } from './support/harness.ts';

let h: BotHarness | undefined;

afterEach(async () => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  await h?.close();
  h = undefined;
});

function newestJobId(harness: BotHarness): string {
  return [...harness.services.jobs.jobs.keys()].at(-1)!;
}

describe('long queues', () => {
  it('continues in a channel message, pinging the member, once the interaction token expired', async () => {
    h = await BotHarness.start({ fake: { interactionTokenTtlMs: 400 } });
    const dana = makeUser({ username: 'dana' });
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate', user: dana }));
    const jobId = newestJobId(h);
    await h.fake.waitFor('the queued status', () => h!.fake.originalMessage(record.raw.id)?.embeds.length);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const gridPath = join(h.dataDir, 'late.png');
    writeFileSync(gridPath, await solidPng(32, 32));
    h.services.jobs.complete(jobId, { imagePaths: [gridPath] });

    const posted = await h.fake.waitFor('the channel message', () =>
      h!.fake.requestsTo('/channels/:channelId/messages', 'POST').find((r) => r.status === 200),
    );
    expect(posted.auth).toBe('bot');
    expect(posted.files).toHaveLength(1);
    const expired = h.fake.requestsTo('/webhooks/:applicationId/:token/messages/:messageId', 'PATCH').at(-1)!;
    expect(expired).toMatchObject({ status: 401, errorCode: 50027 });
    const message = [...h.fake.messages.values()].at(-1)!;
    expect(message.content).toBe(`<@${dana.id}>`);
    expect(message.embeds[0].image?.url).toBe(message.attachments[0].url);
    expect((posted.body as { allowed_mentions?: { users?: string[] } }).allowed_mentions?.users).toEqual([
      dana.id,
    ]);
  });
});

describe('waiting jobs', () => {
  it("updates a waiting job's place in line when the jobs before it start", async () => {
    h = await BotHarness.start({ timing: { positionRefreshMs: 100 } });
    await h.interact(h.fake.slashCommand({ name: 'generate' }));
    const first = newestJobId(h);
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate' }));
    const place = () => h!.fake.originalMessage(record.raw.id)?.embeds[0]?.description ?? '';
    await h.fake.waitFor('position 2', () => place().includes('Position **2**'));
    h.services.jobs.start(first);
    await h.fake.waitFor('position 1', () => place().includes('Position **1**'), 3_000);
  });

  it('keeps a preview while its file is unchanged and replaces it when the worker rewrites it', async () => {
    h = await BotHarness.start();
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate' }));
    const jobId = newestJobId(h);
    const preview = join(h.dataDir, 'preview.png');
    writeFileSync(preview, await solidPng(24, 24, [255, 0, 0]));
    h.services.jobs.start(jobId);
    h.services.jobs.progress(jobId, { fraction: 0.2, stage: 'step 1', previewPath: preview });
    const reply = () => h!.fake.originalMessage(record.raw.id)!;
    await h.fake.waitFor('the first preview', () => reply().attachments.length === 1);
    const firstAttachment = reply().attachments[0].id;

    h.services.jobs.progress(jobId, { fraction: 0.4, stage: 'step 2', previewPath: preview });
    await h.fake.waitFor('the second edit', () => reply().embeds[0].description?.includes('step 2'));
    expect(reply().attachments.map((a) => a.id)).toEqual([firstAttachment]);
    expect(reply().embeds[0].image?.url).toBe(reply().attachments[0].url);

    // Rewritten with the same picture (workers save previews in place): nothing to upload again.
    writeFileSync(preview, await solidPng(24, 24, [255, 0, 0]));
    h.services.jobs.progress(jobId, { fraction: 0.5, stage: 'step 2b', previewPath: preview });
    await h.fake.waitFor('the third edit', () => reply().embeds[0].description?.includes('step 2b'));
    expect(reply().attachments.map((a) => a.id)).toEqual([firstAttachment]);

    writeFileSync(preview, await solidPng(24, 24, [0, 0, 255]));
    h.services.jobs.progress(jobId, { fraction: 0.6, stage: 'step 3', previewPath: preview });
    await h.fake.waitFor('the new preview', () => reply().attachments[0]?.id !== firstAttachment);
    // A 24 px preview is shown scaled up (whole factor, sharp pixels) to at least 256 px.
    const shown = h.fake.attachmentBytes(reply().attachments[0].id)!;
    const { width, height } = await sharp(shown).metadata();
    expect([width, height]).toEqual([264, 264]);
    const { channels } = await sharp(shown).stats();
    expect(channels.slice(0, 3).map((c) => [c.min, c.max])).toEqual([
      [0, 0],
      [0, 0],
      [255, 255],
    ]);
    expect(reply().embeds[0].image?.url).toBe(reply().attachments[0].url);
  });
});

describe('uploads', () => {
  it("re-encodes a result over the interaction's upload limit instead of failing with 413", async () => {
    const limit = 60_000;
    h = await BotHarness.start({ fake: { attachmentSizeLimit: limit } });
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate' }));
    const png = await noisyPng(200, 200);
    expect(png.length).toBeGreaterThan(limit);
    const gridPath = join(h.dataDir, 'big.png');
    writeFileSync(gridPath, png);
    h.services.jobs.complete(newestJobId(h), { imagePaths: [], gridPath });
    const message = await h.fake.waitFor('the result', () => {
      const reply = h!.fake.originalMessage(record.raw.id);
      return reply?.attachments.length ? reply : undefined;
    });
    expect(message.attachments[0].size).toBeLessThanOrEqual(limit);
    expect(message.attachments[0].filename).toMatch(/\.(webp|jpg|png)$/);
    expect(h.fake.requests.filter((r) => r.status === 413)).toEqual([]);
  });
});

describe('registration', () => {
  it('registers every command in a guild and globally, admin commands hidden by default', async () => {
    h = await BotHarness.start();
    const credentials = { token: h.fake.token, applicationId: h.fake.applicationId };
    const inGuild = await registerCommands({
      credentials,
      guildId: h.fake.guild.id,
      rest: { api: h.fake.apiUrl },
    });
    expect(inGuild.scope).toBe('guild');
    expect(inGuild.names.sort()).toEqual([
      'blend',
      'cancel',
      'contest',
      'finetune',
      'generate',
      'help',
      'leaderboard',
      'models',
      'queue',
      'toonify',
    ]);
    const stored = h.fake.guildCommands.get(h.fake.guild.id)!;
    const finetune = stored.find((c) => c.name === 'finetune')!;
    expect(finetune.default_member_permissions).toBe(PermissionFlagsBits.ManageGuild.toString());
    expect(finetune.options?.find((o) => o.name === 'dataset')?.type).toBe(
      ApplicationCommandOptionType.Attachment,
    );
    expect(stored.find((c) => c.name === 'generate')!.default_member_permissions).toBeNull();

    const global = await registerCommands({ credentials, rest: { api: h.fake.apiUrl } });
    expect(global.scope).toBe('global');
    expect(h.fake.globalCommands).toHaveLength(10);
  });

  it('explains a rejected token and a guild the bot is not in', async () => {
    h = await BotHarness.start();
    const rest = { api: h.fake.apiUrl };
    const wrongToken = { token: `${h.fake.token.slice(0, -4)}wxyz`, applicationId: h.fake.applicationId };
    await expect(registerCommands({ credentials: wrongToken, rest })).rejects.toMatchObject({
      name: 'UserError',
      message: 'Discord rejected DISCORD_TOKEN',
      hint: expect.stringContaining('Reset Token'),
    });
    const credentials = { token: h.fake.token, applicationId: h.fake.applicationId };
    await expect(registerCommands({ credentials, guildId: '123456789012345678', rest })).rejects.toThrow(
      /cannot manage commands in guild 123456789012345678/,
    );
  });
});

describe('acknowledgement safety net', () => {
  it('never acknowledges twice when it fires together with the handlers', async () => {
    h = await BotHarness.start({ timing: { ackSafetyMs: 0 } });
    await h.interact(h.fake.slashCommand({ name: 'help' }));
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate' }));
    const jobId = newestJobId(h);
    const gridPath = join(h.dataDir, 'g.png');
    writeFileSync(gridPath, await solidPng(16, 16));
    h.services.jobs.complete(jobId, { imagePaths: [gridPath] });
    const result = await h.fake.waitFor('the result', () => {
      const reply = h!.fake.originalMessage(record.raw.id);
      return reply?.attachments.length ? reply : undefined;
    });
    const vote = await h.interact(h.fake.buttonPress({ customId: `vote:${jobId}`, message: result }));
    // The vote edits the result message whichever acknowledgement came first.
    expect(h.fake.originalMessage(vote.record.raw.id)?.id).toBe(result.id);
    expect(h.fake.requests.filter((r) => r.errorCode === 40060)).toEqual([]);
    expect(h.outcomes.every((o) => o.ok)).toBe(true);
  });
});

describe('logs', () => {
  it('never contain the token, even at debug level and in unexpected errors', async () => {
    vi.stubEnv('LOG_LEVEL', 'debug');
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    h = await BotHarness.start({ log: logger('bot') });
    const secret = h.fake.token;
    h.services.jobs.failNextSubmit = new Error(`redis refused AUTH ${secret}`);
    const { record, outcome } = await h.interact(h.fake.slashCommand({ name: 'generate' }));
    await h.interact(h.fake.slashCommand({ name: 'help' }));
    vi.restoreAllMocks();

    expect(outcome.ok).toBe(false);
    const text = lines.join('');
    expect(lines.length).toBeGreaterThan(10);
    expect(text).toContain('[redacted-token]');
    expect(text).not.toContain(secret);
    expect(text).not.toContain(secret.split('.')[2]);
    // The member gets a reference to quote, not the error.
    const whisper = h.fake.messages.get(record.followUpIds[0])!;
    expect(whisper.embeds[0].title).toBe('Something went wrong on our side');
    expect(JSON.stringify(whisper)).not.toContain(secret);
    const reference = /`([0-9a-f]{8})`/.exec(whisper.embeds[0].description!)![1];
    expect(text).toContain(reference);
  });
});
