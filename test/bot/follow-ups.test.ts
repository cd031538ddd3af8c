// What a member does next with a result, end to end on the fake Discord: enlarge one face, ask for
// variations of it, reroll, with each new result linking back; cooldowns answered privately before
// anything public; the owner pinged when a long job ends; "Queued" shown only to jobs that wait;
// and no edit that leaves the message looking as it did.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { APIMessage } from 'discord.js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultToonifyLayer } from '../../src/bot/commands/toonify.ts';
import { VARIATION_STRENGTH } from '../../src/bot/result-actions.ts';
import type { JobInfo } from '../../src/jobs/types.ts';
import { makeUser, option } from '../support/fake-discord/index.ts';
import { BotHarness, buttons, isEphemeral, solidPng } from './support/harness.ts';

let h: BotHarness;
const alice = makeUser({ username: 'alice' });
const bob = makeUser({ username: 'bob' });
const carol = makeUser({ username: 'carol' });

beforeAll(async () => {
  h = await BotHarness.start({ timing: { queuedGraceMs: 400, pingAfterMs: 1_000, positionRefreshMs: 50 } });
});
afterAll(async () => {
  await h?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function newestJob(): JobInfo {
  return [...h.services.jobs.jobs.values()].at(-1)!;
}

/** Completes `job` with a grid (or one image) and waits for the result message. */
async function finish(job: JobInfo, interactionId: string, image: Buffer): Promise<APIMessage> {
  const path = join(h.dataDir, `${job.id}.png`);
  writeFileSync(path, image);
  h.services.jobs.start(job.id);
  if (job.kind === 'blend') h.services.jobs.complete(job.id, { gridPath: path });
  else h.services.jobs.complete(job.id, { imagePaths: [path], gridPath: path });
  return h.fake.waitFor('the result', () => {
    const message = h.fake.originalMessage(interactionId);
    return message?.attachments.length ? message : undefined;
  });
}

/** Edits of one message in the fake's history. */
function editsOf(messageId: string) {
  return h.fake.messageHistory.filter((e) => e.message.id === messageId && e.op === 'edit');
}

describe('a /generate result', () => {
  let source: JobInfo;
  let sourceMessage: APIMessage;

  beforeAll(async () => {
    const { record } = await h.interact(
      h.fake.slashCommand({ name: 'generate', user: alice, options: [option.integer('seed', 100)] }),
    );
    source = newestJob();
    sourceMessage = await finish(source, record.raw.id, await solidPng(256, 256));
  });

  it('enlarges one face: that seed alone, full size and scaled up to be seen, linking back', async () => {
    const { record, outcome } = await h.interact(
      h.fake.buttonPress({ customId: `enlarge:${source.id}:2`, message: sourceMessage, user: bob }),
    );
    expect(outcome.ok, outcome.error).toBe(true);
    expect(record.ack?.type).toBe(5);
    const job = newestJob();
    expect(job.kind).toBe('generate');
    expect(job.userId).toBe(bob.id);
    expect(job.payload).toMatchObject({ checkpoint: 'ffhq256', seeds: [102], psi: 0.7, grid: false });
    expect(job.meta).toMatchObject({ followUp: 'enlarge', sourceJob: source.id, sourceFace: '2' });
    const result = await finish(job, record.raw.id, await solidPng(32, 32, [10, 200, 10]));
    expect(result.embeds[0].title).toBe('Seed 102');
    expect(result.embeds[0].description).toContain(
      `Face 3 of [this result](https://discord.com/channels/${h.fake.guild.id}/${h.fake.channel.id}/${sourceMessage.id}), enlarged`,
    );
    expect(result.embeds[0].description).toContain(
      'Reproduce: `/generate seed:102 count:1 model:ffhq256 psi:0.7`',
    );
    expect(result.attachments[0]).toMatchObject({ width: 256, height: 256 });
    // One face: nothing to enlarge or vary further, but it can be voted for and rerolled.
    expect(buttons(result).map((b) => b.label)).toEqual(['Reroll', 'Vote · 0']);
  });

  it('makes variations of one face: nearby latents of its seed, offered for enlarging only', async () => {
    await sleep(3_100); // bob's generate cooldown
    const { record, outcome } = await h.interact(
      h.fake.buttonPress({ customId: `vary:${source.id}:1`, message: sourceMessage, user: bob }),
    );
    expect(outcome.ok, outcome.error).toBe(true);
    const job = newestJob();
    if (job.kind !== 'generate') throw new Error('not a generate job');
    expect(job.payload.variation).toEqual({ of: 101, strength: VARIATION_STRENGTH });
    expect(job.payload.seeds).toHaveLength(4);
    expect(job.payload.grid).toBe(true);
    const result = await finish(job, record.raw.id, await solidPng(256, 256));
    expect(result.embeds[0].title).toMatch(/^Variations of seed 101: seeds \d+/);
    expect(result.embeds[0].description).toContain('Variations of face 2 of [this result]');
    expect(result.embeds[0].description).toMatch(
      /Reproduce: `\/generate seed:\d+ count:4 variation_of:101 model:ffhq256 psi:0\.7`/,
    );
    expect(buttons(result).map((b) => b.custom_id)).toEqual([
      `reroll:${job.id}`,
      `vote:${job.id}`,
      ...[0, 1, 2, 3].map((i) => `enlarge:${job.id}:${i}`),
    ]);
  });

  it('rerolls with a link to the result it came from', async () => {
    const { record } = await h.interact(
      h.fake.buttonPress({ customId: `reroll:${source.id}`, message: sourceMessage, user: carol }),
    );
    const job = newestJob();
    expect(job.meta).toMatchObject({
      followUp: 'reroll',
      sourceJob: source.id,
      sourceMessage: sourceMessage.id,
    });
    const result = await finish(job, record.raw.id, await solidPng(256, 256));
    expect(result.embeds[0].description).toContain(
      `Reroll of [this result](https://discord.com/channels/${h.fake.guild.id}/${h.fake.channel.id}/${sourceMessage.id})`,
    );
  });

  it('refuses a press within the cooldown privately, before any public reply', async () => {
    const { record, outcome } = await h.interact(
      h.fake.buttonPress({ customId: `reroll:${source.id}`, message: sourceMessage, user: carol }),
    );
    expect(outcome.ok).toBe(false);
    // Answered with a private message as the acknowledgement itself: no public "thinking" first.
    expect(record.ack?.type).toBe(4);
    const reply = h.fake.originalMessage(record.raw.id)!;
    expect(isEphemeral(reply)).toBe(true);
    expect(reply.embeds[0].title).toMatch(/^Please wait \d s before the next generate$/);
    expect(h.fake.requestsTo('/webhooks/:applicationId/:token/messages/:messageId', 'DELETE')).toEqual([]);
  });

  it('points at no face that does not exist', async () => {
    const { outcome, record } = await h.interact(
      h.fake.buttonPress({ customId: `enlarge:${source.id}:9`, message: sourceMessage, user: carol }),
    );
    expect(outcome.ok).toBe(false);
    expect(h.fake.originalMessage(record.raw.id)!.embeds[0].title).toBe(
      'This button points at no face of the result',
    );
  });
});

describe('a /blend result', () => {
  it('offers the same follow-ups; its reproduce line names the model and epoch, never a file', async () => {
    const { record } = await h.interact(
      h.fake.slashCommand({
        name: 'blend',
        user: alice,
        options: [option.integer('epochs', 10), option.integer('layer', 32), option.string('seeds', '5-7')],
      }),
    );
    const job = newestJob();
    const result = await finish(job, record.raw.id, await solidPng(96, 96));
    expect(result.embeds[0].description).toContain('**ffhq256** × **toons epoch 10** at 32px');
    expect(result.embeds[0].description).toContain(
      'Reproduce: `/blend epochs:10 layer:32 model:toons seeds:5-7`',
    );
    expect(buttons(result).map((b) => b.label)).toContain('Vary 3');
    await sleep(5_100); // alice's blend cooldown
    const press = await h.interact(
      h.fake.buttonPress({ customId: `enlarge:${job.id}:0`, message: result, user: alice }),
    );
    expect(press.outcome.ok, press.outcome.error).toBe(true);
    const enlarged = newestJob();
    expect(enlarged.kind).toBe('blend');
    expect(enlarged.payload).toMatchObject({ seeds: [5], matrix: false });
    expect(enlarged.meta).toMatchObject({ styleModel: 'toons', styleEpoch: '10' });
  }, 15_000);
});

describe('status messages', () => {
  it('never shows "Queued" for a job that starts at once', async () => {
    const raw = h.fake.slashCommand({ name: 'generate', user: makeUser() });
    const handled = h.interact(raw);
    // The worker takes the job within the grace, while the reply still says "thinking".
    const job = await h.fake.waitFor('the job', () =>
      [...h.services.jobs.jobs.values()].find((j) => j.meta.interactionId === raw.id),
    );
    h.services.jobs.start(job.id);
    const { record } = await handled;
    await h.fake.waitFor('the running status', () =>
      h.fake.originalMessage(record.raw.id)?.embeds[0]?.title?.includes('Running'),
    );
    await sleep(500);
    const titles = h.fake.messageHistory
      .filter((e) => e.message.id === h.fake.originalMessage(record.raw.id)!.id)
      .map((e) => e.message.embeds[0]?.title);
    expect(titles.some((t) => t?.includes('Queued'))).toBe(false);
  });

  it('shows "Queued" after the grace to a job that waits, and edits it only when it changes', async () => {
    const started = Date.now();
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate', user: makeUser() }));
    const message = h.fake.originalMessage(record.raw.id)!;
    expect(message.embeds[0].title).toContain('Queued');
    expect(Date.parse(message.edited_timestamp!) - started).toBeGreaterThanOrEqual(350);
    // Position re-reads every 50 ms find the same place and ETA: no edits.
    await sleep(600);
    expect(editsOf(message.id)).toHaveLength(1);
    h.services.jobs.start(newestJob().id);
    await h.fake.waitFor('the running status', () => editsOf(message.id).length === 2);
  });

  it('pings the owner in a new message when a job that took a while ends', async () => {
    const dave = makeUser({ username: 'dave' });
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate', user: dave }));
    const job = newestJob();
    await sleep(1_100);
    await finish(job, record.raw.id, await solidPng(64, 64));
    const ping = await h.fake.waitFor('the ping', () => {
      const ids = h.fake.interactions.get(record.raw.id)!.followUpIds;
      return ids.length ? h.fake.messages.get(ids[0]) : undefined;
    });
    expect(isEphemeral(ping)).toBe(false);
    expect(ping.content).toMatch(
      new RegExp(`^<@${dave.id}> your generate is ready: https://discord.com/channels/`),
    );
    const request = h.fake.requestsTo('/webhooks/:applicationId/:token', 'POST').at(-1)!;
    expect((request.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ users: [dave.id] });
  });

  it('does not ping for a job that was quick', async () => {
    const { record } = await h.interact(h.fake.slashCommand({ name: 'generate', user: makeUser() }));
    await finish(newestJob(), record.raw.id, await solidPng(64, 64));
    await sleep(200);
    expect(h.fake.interactions.get(record.raw.id)!.followUpIds).toEqual([]);
  });
});

describe('/toonify', () => {
  it('tells the member privately which of several faces it used and how to pick another', async () => {
    const photo = h.fake.uploadAttachment({
      filename: 'group.png',
      bytes: await solidPng(64, 64),
      contentType: 'image/png',
    });
    const { record } = await h.interact(
      h.fake.slashCommand({
        name: 'toonify',
        user: makeUser(),
        options: [option.attachment('photo', photo)],
        attachments: [photo],
      }),
    );
    const job = newestJob();
    if (job.kind !== 'toonify') throw new Error('not a toonify job');
    expect(job.payload.face).toBeUndefined();
    const grid = join(h.dataDir, 'toonify-group.png');
    writeFileSync(grid, await solidPng(192, 64));
    h.services.jobs.start(job.id);
    h.services.jobs.complete(job.id, {
      gridPath: grid,
      reconstructionPath: grid,
      stylisedPath: grid,
      face: { index: 0, count: 3 },
      psnr: 20,
      steps: 300,
      projectionSeconds: 30,
      backend: 'wasm',
    });
    const note = await h.fake.waitFor('the private note', () => {
      const ids = h.fake.interactions.get(record.raw.id)!.followUpIds;
      return ids.length ? h.fake.messages.get(ids[0]) : undefined;
    });
    expect(isEphemeral(note)).toBe(true);
    expect(note.content).toBe(
      'Your photo shows 3 faces; I used the largest. To pick another, run /toonify again with `face:` from 0 (largest) to 2 (smallest).',
    );
    const result = h.fake.originalMessage(record.raw.id)!;
    expect(result.embeds[0].description).toContain(
      'Reproduce: `/toonify photo:(your photo) blend:toons layer:32`',
    );
  });

  it('swaps at half the resolution by default, at most 32 px: a visible style at every model size', () => {
    expect([16, 32, 64, 256, 1024].map(defaultToonifyLayer)).toEqual([8, 16, 32, 32, 32]);
  });

  it('shows previews of at least 256 px, uploaded once per picture', async () => {
    const photo = h.fake.uploadAttachment({
      filename: 'me.png',
      bytes: await solidPng(64, 64),
      contentType: 'image/png',
    });
    const { record } = await h.interact(
      h.fake.slashCommand({
        name: 'toonify',
        user: makeUser(),
        options: [option.attachment('photo', photo)],
        attachments: [photo],
      }),
    );
    const job = newestJob();
    const preview = join(h.dataDir, 'toonify-preview.png');
    writeFileSync(preview, await solidPng(64, 32, [10, 10, 200]));
    h.services.jobs.start(job.id);
    for (const step of [30, 60, 90]) {
      h.services.jobs.progress(job.id, {
        fraction: step / 300,
        stage: `fitting the face: step ${step}/300`,
        previewPath: preview,
      });
      await sleep(120);
    }
    const message = h.fake.originalMessage(record.raw.id)!;
    await h.fake.waitFor('the last step', () => message.embeds[0]?.description?.includes('step 90/300'));
    const uploads = h.fake
      .requestsTo('/webhooks/:applicationId/:token/messages/:messageId', 'PATCH')
      .filter((r) => r.params.token === record.raw.token && r.files.length);
    expect(uploads).toHaveLength(1);
    const { width, height } = await sharp(uploads[0].files[0].bytes).metadata();
    expect(Math.min(width!, height!)).toBeGreaterThanOrEqual(256);
  });
});
