// The bot end to end: the real discord.js client logged in to the fake Discord on 127.0.0.1,
// interactions injected over the gateway, answers checked in what the fake received and stored.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type APIAttachment, type APIInteraction, ChannelType, PermissionFlagsBits } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuotaExceededError } from '../../src/jobs/errors.ts';
import type { JobInfo } from '../../src/jobs/types.ts';
import {
  MEMBER_PERMISSIONS,
  makeUser,
  option,
  watchOutboundConnections,
} from '../support/fake-discord/index.ts';
import { ADMIN_ROLE_ID, BotHarness, buttons, isEphemeral, solidPng } from './support/harness.ts';
import type { MemoryCatalog } from './support/memory-services.ts';

const watch = watchOutboundConnections();
let h: BotHarness;

beforeAll(async () => {
  h = await BotHarness.start();
});

afterAll(async () => {
  await h?.close();
  watch.stop();
});

/** The single job the bot submitted since `before` jobs existed. */
function newestJob(): JobInfo {
  return [...h.services.jobs.jobs.values()].at(-1)!;
}

describe('login', () => {
  it('connects to the gateway as discord.js does against Discord: JSON, no compression, one IDENTIFY', () => {
    expect(h.fake.gateway.identifies).toBe(1);
    expect(h.fake.gateway.connections[0].query).toEqual({ v: '10', encoding: 'json' });
    expect(h.bot.client.user?.id).toBe(h.fake.applicationId);
    expect(h.bot.client.guilds.cache.has(h.fake.guild.id)).toBe(true);
    expect(h.fake.requestsTo('/gateway/bot', 'GET')).toHaveLength(1);
    expect(h.fake.unknownRoutes).toEqual([]);
  });
});

describe('/help', () => {
  it('answers at once, privately, listing the commands a member may use', async () => {
    const { record, outcome } = await h.interact(h.fake.slashCommand({ name: 'help' }));
    expect(outcome.ok).toBe(true);
    expect(record.ack?.type).toBe(4);
    expect(record.ack!.latencyMs).toBeLessThan(3_000);
    const reply = h.fake.originalMessage(record.raw.id);
    expect(isEphemeral(reply)).toBe(true);
    const text = reply!.embeds[0].description!;
    for (const name of ['/generate', '/blend', '/models', '/queue', '/cancel', '/leaderboard'])
      expect(text).toContain(name);
    expect(text).not.toContain('/finetune');
  });

  it('shows admin commands to members with Manage Server', async () => {
    const { record } = await h.interact(
      h.fake.slashCommand({
        name: 'help',
        permissions: MEMBER_PERMISSIONS | PermissionFlagsBits.ManageGuild,
      }),
    );
    expect(h.fake.originalMessage(record.raw.id)!.embeds[0].description).toContain('/finetune');
  });
});

describe('/generate, its progress and its result', () => {
  const alice = makeUser({ username: 'alice' });
  const bob = makeUser({ username: 'bob' });
  let job: JobInfo;
  let interactionId: string;

  it('defers publicly, queues the job and shows its position with a cancel button', async () => {
    const { record, outcome } = await h.interact(
      h.fake.slashCommand({
        name: 'generate',
        user: alice,
        options: [option.integer('seed', 42), option.integer('count', 4)],
      }),
    );
    interactionId = record.raw.id;
    expect(outcome.ok).toBe(true);
    expect(record.ack?.type).toBe(5);
    expect(record.ack!.latencyMs).toBeLessThan(3_000);
    job = newestJob();
    expect(job.kind).toBe('generate');
    expect(job.payload).toMatchObject({
      checkpoint: 'ffhq256',
      seeds: [42, 43, 44, 45],
      psi: 0.7,
      grid: true,
    });
    expect(job.userId).toBe(alice.id);
    expect(job.meta).toMatchObject({ guildId: h.fake.guild.id, channelId: h.fake.channel.id });
    const reply = h.fake.originalMessage(interactionId)!;
    expect(isEphemeral(reply)).toBe(false);
    expect(reply.embeds[0].title).toContain('Queued');
    expect(reply.embeds[0].description).toContain('Position **1**');
    expect(reply.embeds[0].description).toMatch(/<t:\d+:R>/);
    expect(buttons(reply).map((b) => b.custom_id)).toEqual([`cancel:${job.id}`]);
  });

  it('edits the reply with a progress bar while the job runs', async () => {
    h.services.jobs.start(job.id);
    h.services.jobs.progress(job.id, { fraction: 0.5, stage: 'generating' });
    const reply = await h.fake.waitFor('the progress edit', () => {
      const message = h.fake.originalMessage(interactionId);
      return message?.embeds[0]?.description?.includes('50%') ? message : undefined;
    });
    expect(reply.embeds[0].title).toContain('Running');
    expect(reply.embeds[0].description).toContain('generating');
    expect(reply.embeds[0].description).toContain('██████████░░░░░░░░░░');
  });

  it('replaces the status with the grid, uploaded as multipart, plus reroll and vote buttons', async () => {
    const png = await solidPng(128, 96);
    const gridPath = join(h.dataDir, 'grid.png');
    writeFileSync(gridPath, png);
    h.services.jobs.complete(job.id, { imagePaths: [], gridPath });
    const reply = await h.fake.waitFor('the result edit', () => {
      const message = h.fake.originalMessage(interactionId);
      return message?.attachments.length === 1 ? message : undefined;
    });
    const upload = h.fake
      .requestsTo('/webhooks/:applicationId/:token/messages/:messageId', 'PATCH')
      .filter((r) => r.files.length)
      .at(-1)!;
    expect(upload.files[0]).toMatchObject({
      field: 'files[0]',
      filename: `facestyle-${job.id}.png`,
      size: png.length,
    });
    expect(upload.files[0].bytes.equals(png)).toBe(true);
    const attachment = reply.attachments[0];
    expect(h.fake.attachmentBytes(attachment.id)?.equals(png)).toBe(true);
    expect(attachment).toMatchObject({ width: 128, height: 96 });
    expect(reply.embeds[0].image?.url).toBe(attachment.url);
    expect(reply.embeds[0].description).toContain(`<@${alice.id}>`);
    // Reroll and vote, then per face: enlarge and variations, routed by custom id like the others.
    expect(buttons(reply).map((b) => [b.custom_id, b.label])).toEqual([
      [`reroll:${job.id}`, 'Reroll'],
      [`vote:${job.id}`, 'Vote · 0'],
      ...[0, 1, 2, 3].map((i) => [`enlarge:${job.id}:${i}`, `Enlarge ${i + 1}`]),
      ...[0, 1, 2, 3].map((i) => [`vary:${job.id}:${i}`, `Vary ${i + 1}`]),
    ]);
    expect(reply.components).toHaveLength(3);
    // The exact command that makes it again.
    expect(reply.embeds[0].description).toContain(
      'Reproduce: `/generate seed:42 count:4 model:ffhq256 psi:0.7`',
    );
  });

  it('counts a vote on the button itself, and a second press takes it back', async () => {
    const press = () =>
      h.interact(
        h.fake.buttonPress({
          customId: `vote:${job.id}`,
          message: h.fake.originalMessage(interactionId)!,
          user: bob,
        }),
      );
    const first = await press();
    expect(first.record.ack?.type).toBe(7);
    expect(
      buttons(h.fake.originalMessage(interactionId)).find((b) => b.custom_id === `vote:${job.id}`)?.label,
    ).toBe('Vote · 1');
    const whisper = h.fake.messages.get(first.record.followUpIds[0]);
    expect(isEphemeral(whisper)).toBe(true);
    expect(whisper?.content).toContain('Vote counted');
    await press();
    expect(
      buttons(h.fake.originalMessage(interactionId)).find((b) => b.custom_id === `vote:${job.id}`)?.label,
    ).toBe('Vote · 0');
    expect(h.services.votes.count(job.id)).toBe(0);
  });

  it('refuses a vote for your own result, privately', async () => {
    const { record, outcome } = await h.interact(
      h.fake.buttonPress({
        customId: `vote:${job.id}`,
        message: h.fake.originalMessage(interactionId)!,
        user: alice,
      }),
    );
    expect(outcome.ok).toBe(false);
    const reply = h.fake.originalMessage(record.raw.id);
    // A refused vote answers with an ephemeral message, not an edit of the result.
    expect(record.ack?.type).toBe(4);
    expect(isEphemeral(reply)).toBe(true);
    expect(reply!.embeds[0].title).toBe('You cannot vote for your own result');
  });

  it('keeps buttons of old messages working after a restart (no collectors)', async () => {
    await h.bot.stop();
    await h.startBot();
    expect(h.fake.gateway.identifies).toBe(2);
    const { record, outcome } = await h.interact(
      h.fake.buttonPress({
        customId: `vote:${job.id}`,
        message: h.fake.originalMessage(interactionId)!,
        user: bob,
      }),
    );
    expect(outcome.ok).toBe(true);
    expect(record.ack?.type).toBe(7);
    expect(h.services.votes.count(job.id)).toBe(1);
  });

  it('rerolls with new seeds, same count and model, as a new public reply', async () => {
    const { record, outcome } = await h.interact(
      h.fake.buttonPress({
        customId: `reroll:${job.id}`,
        message: h.fake.originalMessage(interactionId)!,
        user: bob,
      }),
    );
    expect(outcome.ok).toBe(true);
    expect(record.ack?.type).toBe(5);
    const rerolled = newestJob();
    expect(rerolled.id).not.toBe(job.id);
    expect(rerolled.userId).toBe(bob.id);
    const seeds = (rerolled.payload as { seeds: number[] }).seeds;
    expect(seeds).toHaveLength(4);
    expect(seeds).not.toEqual([42, 43, 44, 45]);
    expect(rerolled.payload).toMatchObject({ checkpoint: 'ffhq256', psi: 0.7 });
    await h.fake.waitFor('the rerolled status', () =>
      h.fake.originalMessage(record.raw.id)?.embeds[0]?.title?.includes('Queued'),
    );
  });
});

describe('the other commands', () => {
  it('/leaderboard ranks the voted result with a link to its message', async () => {
    const voted = [...h.services.jobs.jobs.values()].find((job) => h.services.votes.count(job.id) > 0)!;
    const { record, outcome } = await h.interact(h.fake.slashCommand({ name: 'leaderboard' }));
    expect(outcome.ok).toBe(true);
    const reply = h.fake.originalMessage(record.raw.id)!;
    expect(isEphemeral(reply)).toBe(false);
    const message = h.services.votes.result(voted.id)!;
    expect(reply.embeds[0].description).toContain('🥇 1 vote · seeds 42-45 · ffhq256 · psi 0.7');
    expect(reply.embeds[0].fields![0].value).toBe(`1. <@${voted.userId}>: 1 vote on 1 result`);
    expect(reply.embeds[0].description).toContain(
      `https://discord.com/channels/${h.fake.guild.id}/${message.channelId}/${message.messageId}`,
    );
  });

  it('/models lists models by kind with the snapshots /blend can use', async () => {
    const { record } = await h.interact(h.fake.slashCommand({ name: 'models' }));
    const fields = h.fake.originalMessage(record.raw.id)!.embeds[0].fields!;
    expect(fields.map((f) => f.name)).toEqual(['Base models', 'Fine-tunes (use with /blend)']);
    expect(fields[0].value).toContain('**ffhq256** (default) · 256px');
    expect(fields[1].value).toContain('**toons** · 256px · from ffhq256 · epochs 10, 20');
  });

  it('/models shows no epochs for a base model, even one whose file has a training epoch', async () => {
    h.services.models.models.push({ name: 'imported', kind: 'base', resolution: 256, snapshots: [12] });
    try {
      const { record } = await h.interact(h.fake.slashCommand({ name: 'models' }));
      const base = h.fake.originalMessage(record.raw.id)!.embeds[0].fields![0].value;
      expect(base).toContain('**imported** · 256px');
      expect(base).not.toContain('epoch');
    } finally {
      h.services.models.models.pop();
    }
  });

  it('/blend takes the snapshot of the chosen epoch and blends it into its base model', async () => {
    const { record, outcome } = await h.interact(
      h.fake.slashCommand({
        name: 'blend',
        options: [option.integer('epochs', 20), option.integer('layer', 32), option.string('seeds', '3-5')],
      }),
    );
    expect(outcome.ok).toBe(true);
    expect(record.ack?.type).toBe(5);
    expect(newestJob().payload).toEqual({
      base: 'ffhq256',
      style: join(h.dataDir, 'runs', 'toons', 'epoch-20.safetensors'),
      layer: 32,
      width: 0,
      direction: 'texture',
      seeds: [3, 4, 5],
      psi: 0.7,
      matrix: false,
    });
  });

  it('/blend names the snapshots that exist when the epoch has none', async () => {
    const { record } = await h.interact(
      h.fake.slashCommand({
        name: 'blend',
        options: [option.integer('epochs', 15), option.integer('layer', 32)],
      }),
    );
    const whisper = h.fake.messages.get(record.followUpIds[0])!;
    expect(whisper.embeds[0].title).toBe('Toons has no snapshot at epoch 15');
    expect(whisper.embeds[0].description).toBe('Snapshots: 10, 20');
  });

  it('/blend without epochs takes the best-scored snapshot, else the newest, and says which', async () => {
    const toons = (h.services.models as MemoryCatalog).models.find((m) => m.name === 'toons')!;
    const blendWithoutEpochs = async () => {
      const { record } = await h.interact(
        h.fake.slashCommand({ name: 'blend', options: [option.integer('layer', 32)] }),
      );
      const description = await h.fake.waitFor('the job message', () =>
        h.fake.originalMessage(record.raw.id)?.embeds[0]?.description?.includes('style: ')
          ? h.fake.originalMessage(record.raw.id)!.embeds[0].description
          : undefined,
      );
      return { style: (newestJob().payload as { style: string }).style, meta: newestJob().meta, description };
    };
    const unscored = await blendWithoutEpochs();
    expect(unscored.style).toBe(join(h.dataDir, 'runs', 'toons', 'epoch-20.safetensors'));
    expect(unscored.description).toContain('style: epoch 20 of toons: its newest snapshot (none is scored)');
    expect(unscored.meta).toMatchObject({ styleModel: 'toons', styleEpoch: '20' });

    Object.assign(toons, { bestEpoch: 10, score: { metric: 'KID-nsfwMNv2', kid: 0.0123, kidStd: 0.0021 } });
    try {
      const best = await blendWithoutEpochs();
      expect(best.style).toBe(join(h.dataDir, 'runs', 'toons', 'epoch-10.safetensors'));
      expect(best.description).toContain(
        'style: epoch 10 of toons: its best-scored snapshot (KID-nsfwMNv2 0.0123 ± 0.0021, lower is better)',
      );
      // The reproduce line and the job's label read the epoch from the meta: the one picked.
      expect(best.meta).toMatchObject({ styleModel: 'toons', styleEpoch: '10' });
      expect(best.description).toContain('× **toons epoch 10**');
      const listed = await h.interact(h.fake.slashCommand({ name: 'models' }));
      expect(h.fake.originalMessage(listed.record.raw.id)!.embeds[0].fields![1].value).toContain(
        '**toons** · 256px · from ffhq256 · epochs 10, 20 · best epoch 10 (KID-nsfwMNv2 0.0123)',
      );
    } finally {
      delete toons.bestEpoch;
      delete toons.score;
    }
  });

  it('/queue shows your waiting jobs with their place and ETA, and /cancel cancels one', async () => {
    const erin = makeUser({ username: 'erin' });
    await h.interact(h.fake.slashCommand({ name: 'generate', user: erin }));
    const job = newestJob();
    const listed = await h.interact(h.fake.slashCommand({ name: 'queue', user: erin }));
    const embed = h.fake.originalMessage(listed.record.raw.id)!.embeds[0];
    expect(embed.title).toBe('Your jobs (1)');
    expect(embed.description).toContain(`\`${job.id}\``);
    expect(embed.description).toMatch(/position \d+ · done <t:\d+:R>/);
    const cancelled = await h.interact(
      h.fake.slashCommand({ name: 'cancel', user: erin, options: [option.string('job', job.id)] }),
    );
    expect(cancelled.outcome.ok).toBe(true);
    expect(h.fake.originalMessage(cancelled.record.raw.id)!.content).toContain(`Cancelled \`${job.id}\``);
    expect(h.services.jobs.jobs.get(job.id)?.status).toBe('cancelled');
  });
});

describe('cancel buttons', () => {
  it("refuses other members' presses and lets the owner cancel, updating the status", async () => {
    const owner = makeUser({ username: 'carol' });
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate', user: owner }));
    const job = newestJob();
    const status = await h.fake.waitFor('the queued status', () => {
      const message = h.fake.originalMessage(record.raw.id);
      return buttons(message).length ? message : undefined;
    });
    const stranger = await h.interact(
      h.fake.buttonPress({ customId: `cancel:${job.id}`, message: status, user: makeUser() }),
    );
    expect(stranger.outcome.ok).toBe(false);
    expect(h.fake.originalMessage(stranger.record.raw.id)?.embeds[0].title).toContain(
      'is not yours to cancel',
    );
    expect(h.services.jobs.jobs.get(job.id)?.status).toBe('queued');

    const mine = await h.interact(
      h.fake.buttonPress({ customId: `cancel:${job.id}`, message: status, user: owner }),
    );
    expect(mine.outcome.ok).toBe(true);
    expect(isEphemeral(h.fake.originalMessage(mine.record.raw.id))).toBe(true);
    expect(h.services.jobs.jobs.get(job.id)?.status).toBe('cancelled');
    const cancelled = await h.fake.waitFor('the cancelled status', () => {
      const message = h.fake.originalMessage(record.raw.id);
      return message?.embeds[0]?.title?.includes('Cancelled') ? message : undefined;
    });
    expect(buttons(cancelled)).toEqual([]);
  });
});

describe('errors', () => {
  it('answers an unknown or malformed custom id with a private, clear message', async () => {
    for (const customId of ['legacy-upscale:abc', 'vote']) {
      const message = h.fake.originalMessage([...h.fake.interactions.keys()][0])!;
      const { record, outcome } = await h.interact(h.fake.buttonPress({ customId, message }));
      expect(outcome.ok).toBe(false);
      expect(record.ack?.type).toBe(4);
      const reply = h.fake.originalMessage(record.raw.id);
      expect(isEphemeral(reply)).toBe(true);
      expect(reply!.embeds[0].title).toBe('This button is no longer supported');
    }
  });

  it('turns a quota refusal into a private message and removes the public "thinking" reply', async () => {
    h.services.jobs.failNextSubmit = new QuotaExceededError(
      'cooldown',
      'please wait 3 s before the next generate',
    );
    const before = h.services.jobs.jobs.size;
    const { record, outcome } = await h.interact(h.fake.slashCommand({ name: 'generate' }));
    expect(outcome.ok).toBe(false);
    expect(record.ack?.type).toBe(5);
    expect(h.fake.originalMessage(record.raw.id)).toBeUndefined();
    const whisper = h.fake.messages.get(record.followUpIds[0]);
    expect(isEphemeral(whisper)).toBe(true);
    expect(whisper!.embeds[0].title).toBe('Please wait 3 s before the next generate');
    expect(h.services.jobs.jobs.size).toBe(before);
  });

  it('refuses commands sent from a DM', async () => {
    const {
      guild_id: _guildId,
      guild: _guild,
      member,
      ...rest
    } = h.fake.slashCommand({ name: 'leaderboard' });
    const dm = {
      ...rest,
      user: member!.user,
      channel: { id: rest.channel.id, type: ChannelType.DM },
      context: 1,
    };
    const { record, outcome } = await h.interact(dm as unknown as APIInteraction);
    expect(outcome.ok).toBe(false);
    expect(h.fake.originalMessage(record.raw.id)!.embeds[0].title).toBe('Facestyle works in servers only');
  });

  it('names the models that exist when asked for one that does not', async () => {
    const { record } = await h.interact(
      h.fake.slashCommand({ name: 'generate', options: [option.string('model', 'nope')] }),
    );
    const whisper = h.fake.messages.get(record.followUpIds[0]);
    expect(whisper!.embeds[0].title).toBe('There is no model called "nope"');
    expect(whisper!.embeds[0].description).toContain('ffhq256');
  });
});

describe('/finetune', () => {
  const datasetOptions = (attachment: APIAttachment, name: string) => [
    option.attachment('dataset', attachment),
    option.string('name', name),
    option.integer('epochs', 10),
  ];
  const zip = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), randomBytes(2048)]);

  it('refuses a forged call from a member without Manage Server or an admin role, before any download', async () => {
    const attachment = h.fake.uploadAttachment({
      filename: 'faces.zip',
      bytes: zip,
      contentType: 'application/zip',
    });
    const cdnBefore = h.fake.cdnRequests.length;
    const { record, outcome } = await h.interact(
      h.fake.slashCommand({
        name: 'finetune',
        options: datasetOptions(attachment, 'sneaky'),
        attachments: [attachment],
      }),
    );
    expect(outcome.ok).toBe(false);
    const reply = h.fake.originalMessage(record.raw.id);
    expect(isEphemeral(reply)).toBe(true);
    expect(reply!.embeds[0].title).toBe('/finetune is for admins only');
    expect(h.fake.cdnRequests.length).toBe(cdnBefore);
    expect(h.services.datasets.imported).toEqual([]);
    expect([...h.services.jobs.jobs.values()].some((j) => j.kind === 'finetune')).toBe(false);
  });

  it('refuses a single image and an expired attachment link with what to do', async () => {
    const image = h.fake.uploadAttachment({
      filename: 'me.png',
      bytes: await solidPng(8, 8),
      contentType: 'image/png',
    });
    const asImage = await h.interact(
      h.fake.slashCommand({
        name: 'finetune',
        roles: [ADMIN_ROLE_ID],
        options: datasetOptions(image, 'one'),
        attachments: [image],
      }),
    );
    expect(h.fake.originalMessage(asImage.record.raw.id)!.embeds[0].title).toBe(
      '"me.png" is a single image, not a dataset',
    );

    const expired = h.fake.uploadAttachment({
      filename: 'faces.zip',
      bytes: zip,
      contentType: 'application/zip',
    });
    h.fake.expireAttachment(expired.id);
    const late = await h.interact(
      h.fake.slashCommand({
        name: 'finetune',
        roles: [ADMIN_ROLE_ID],
        options: datasetOptions(expired, 'two'),
        attachments: [expired],
      }),
    );
    expect(late.outcome.ok).toBe(false);
    const reply = h.fake.originalMessage(late.record.raw.id)!;
    expect(isEphemeral(reply)).toBe(true);
    expect(reply.embeds[0].title).toBe('The attachment link has expired or the file was deleted');
    expect(reply.embeds[0].description).toContain('Upload the file again');
    expect(h.services.datasets.imported).toEqual([]);
  });

  it('posts progress as a channel message that a restarted bot keeps editing, then a summary', async () => {
    const attachment = h.fake.uploadAttachment({
      filename: 'faces.zip',
      bytes: zip,
      contentType: 'application/zip',
    });
    const { record, outcome } = await h.interact(
      h.fake.slashCommand({
        name: 'finetune',
        roles: [ADMIN_ROLE_ID],
        options: datasetOptions(attachment, 'anime'),
        attachments: [attachment],
      }),
    );
    expect(outcome.ok).toBe(true);
    expect(record.ack?.type).toBe(5);
    expect(isEphemeral(h.fake.originalMessage(record.raw.id))).toBe(true);
    expect(h.services.datasets.imported.at(-1)).toMatchObject({
      name: 'anime',
      resolution: 256,
      bytes: zip.length,
    });
    const job = newestJob();
    expect(job.kind).toBe('finetune');
    expect(job.payload).toMatchObject({ base: 'ffhq256', epochs: 10, snapshotEvery: 2 });
    // Before the job was submitted, the admin got the counts and the contact sheet of the kept faces.
    const sheetEdit = h.fake
      .requestsTo('/webhooks/:applicationId/:token/messages/:messageId', 'PATCH')
      .find((r) => r.params.token === record.raw.token && r.files.length === 1);
    expect(sheetEdit?.files[0]).toMatchObject({ filename: 'contact-sheet.png' });
    expect(sheetEdit!.files[0].bytes.equals(h.services.datasets.contactSheetPng)).toBe(true);
    expect(sheetEdit!.at).toBeLessThanOrEqual(h.services.jobs.jobs.get(job.id)!.createdAt);
    const summaryText = String((sheetEdit!.body as { content?: string }).content);
    expect(summaryText).toMatch(/120 images kept/);
    expect(summaryText).toContain('100 aligned on a detected face, 20 centre-cropped');
    expect(summaryText).toContain('3 files not used (no face found: 2, duplicates: 1)');
    expect(h.services.datasets.imported.at(-1)?.align).toBe('auto');
    // The summary stays; the queued notice is a message of its own that keeps the model's name.
    const summaryMessage = h.fake.originalMessage(record.raw.id)!;
    expect(summaryMessage.content).toBe(summaryText);
    const queuedNotice = h.fake.messages.get(h.fake.interactions.get(record.raw.id)!.followUpIds[0])!;
    expect(isEphemeral(queuedNotice)).toBe(true);
    expect(queuedNotice.content).toContain(`Fine-tune **anime** queued as job \`${job.id}\``);
    expect(h.fake.messages.get(job.meta.statusMessageId)!.embeds[0].description).toContain(
      'fine-tune **anime** from **ffhq256**',
    );
    expect(h.fake.originalMessage(record.raw.id)!.attachments.map((a) => a.filename)).toEqual([
      'contact-sheet.png',
    ]);
    const messageId = job.meta.statusMessageId;
    const posted = h.fake.requestsTo('/channels/:channelId/messages', 'POST').at(-1)!;
    expect(posted.auth).toBe('bot');
    expect(h.fake.messages.get(messageId)?.channel_id).toBe(h.fake.channel.id);

    const preview = join(h.dataDir, 'preview-epoch2.png');
    writeFileSync(preview, await solidPng(64, 64, [10, 200, 10]));
    h.services.jobs.start(job.id);
    h.services.jobs.progress(job.id, { fraction: 0.2, stage: 'epoch 2/10', previewPath: preview });
    await h.fake.waitFor('the preview edit', () => h.fake.messages.get(messageId)?.attachments.length === 1);
    expect(h.fake.messages.get(messageId)!.embeds[0].description).toContain('epoch 2/10');

    await h.bot.stop();
    await h.startBot();
    h.services.jobs.progress(job.id, { fraction: 0.6, stage: 'epoch 6/10', previewPath: preview });
    await h.fake.waitFor('an edit by the restarted bot', () =>
      h.fake.messages.get(messageId)?.embeds[0]?.description?.includes('epoch 6/10'),
    );
    const edits = h.fake
      .requestsTo('/channels/:channelId/messages/:messageId', 'PATCH')
      .filter((r) => r.params.messageId === messageId);
    expect(edits.every((r) => r.auth === 'bot')).toBe(true);

    // The worker scored both snapshots against the training images; epoch 5 came out best.
    h.services.jobs.complete(job.id, {
      snapshots: [
        {
          epoch: 5,
          checkpointPath: join(h.dataDir, 'e5.safetensors'),
          score: { metric: 'KID-nsfwMNv2', kid: 0.0123, kidStd: 0.0021 },
        },
        {
          epoch: 10,
          checkpointPath: join(h.dataDir, 'e10.safetensors'),
          previewPath: preview,
          score: { metric: 'KID-nsfwMNv2', kid: 0.0456, kidStd: 0.003 },
        },
      ],
      bestEpoch: 5,
    });
    const summary = await h.fake.waitFor('the summary', () => {
      const message = h.fake.messages.get(messageId);
      return message?.embeds[0]?.title?.includes('finished') ? message : undefined;
    });
    expect(summary.embeds[0].description).toContain('epochs 5, 10');
    expect(summary.embeds[0].description).toContain(
      'Best epoch: **5** (KID-nsfwMNv2 0.0123 ± 0.0021 against the training images, lower is better)',
    );
    expect(summary.embeds[0].description).toContain('/blend model:anime epochs:5');
    expect(buttons(summary)).toEqual([]);
  });
});

describe('network', () => {
  it('never connected anywhere but 127.0.0.1', () => {
    expect(watch.attempts.length).toBeGreaterThan(0);
    expect(watch.nonLocal()).toEqual([]);
  });
});
