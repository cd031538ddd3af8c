// /toonify end to end against the fake Discord: the photo attachment fetched from the fake CDN into
// the bot's upload folder, the job queued with it, progress, the grid uploaded with a vote button,
// and the photo gone once the job ends. Refusals answer privately and download nothing they need not.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { APIAttachment } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../src/jobs/types.ts';
import { toonifyPhotosDir } from '../../src/store/toonify-photos.ts';
import { makeUser, option, watchOutboundConnections } from '../support/fake-discord/index.ts';
import { BotHarness, buttons, isEphemeral, noisyPng, solidPng } from './support/harness.ts';

const watch = watchOutboundConnections();
let h: BotHarness;
let photoBytes: Buffer;

beforeAll(async () => {
  h = await BotHarness.start();
  photoBytes = await solidPng(64, 64, [220, 180, 150]);
});

afterAll(async () => {
  await h?.close();
  watch.stop();
});

function toonifyJobs(): JobInfo[] {
  return [...h.services.jobs.jobs.values()].filter((j) => j.kind === 'toonify');
}

function photoUpload(filename = 'me.png', bytes = photoBytes, contentType = 'image/png'): APIAttachment {
  return h.fake.uploadAttachment({ filename, bytes, contentType });
}

function toonifyCommand(
  photo: APIAttachment,
  extra = [] as ReturnType<typeof option.integer>[],
  user?: ReturnType<typeof makeUser>,
) {
  return h.fake.slashCommand({
    name: 'toonify',
    options: [option.attachment('photo', photo), ...extra],
    attachments: [photo],
    ...(user ? { user } : {}),
  });
}

describe('/toonify', () => {
  const alice = makeUser({ username: 'alice' });
  const bob = makeUser({ username: 'bob' });

  it('fetches the photo, queues the job with the newest style, then shows the grid with a vote button and deletes the photo', async () => {
    const photo = photoUpload();
    const cdnBefore = h.fake.cdnRequests.length;
    const { record, outcome } = await h.interact(toonifyCommand(photo, [option.integer('face', 1)], alice));
    expect(outcome.ok, outcome.error).toBe(true);
    expect(record.ack?.type).toBe(5);
    expect(h.fake.cdnRequests.slice(cdnBefore).map((r) => r.status)).toEqual([200]);

    const job = toonifyJobs().at(-1)!;
    if (job.kind !== 'toonify') throw new Error('not a toonify job');
    expect(job.userId).toBe(alice.id);
    expect(job.payload).toMatchObject({ base: 'ffhq256', style: 'toons', layer: 32, face: 1 });
    const photoPath = job.payload.photoPath;
    expect(photoPath).toBe(join(toonifyPhotosDir(h.dataDir), `${record.raw.id}.png`));
    expect(readFileSync(photoPath).equals(photoBytes)).toBe(true);
    const queued = h.fake.originalMessage(record.raw.id)!;
    expect(isEphemeral(queued)).toBe(false);
    expect(queued.embeds[0].description).toContain('toonify with **toons** at 32px');
    expect(buttons(queued).map((b) => b.custom_id)).toEqual([`cancel:${job.id}`]);

    h.services.jobs.start(job.id);
    const preview = join(h.dataDir, 'toonify-preview.png');
    writeFileSync(preview, await solidPng(64, 32, [10, 10, 200]));
    h.services.jobs.progress(job.id, {
      fraction: 0.4,
      stage: 'fitting the face: step 120/300',
      previewPath: preview,
    });
    await h.fake.waitFor('the progress edit', () =>
      h.fake.originalMessage(record.raw.id)?.embeds[0]?.description?.includes('step 120/300'),
    );

    const grid = await solidPng(3 * 64, 80, [120, 60, 200]);
    const gridPath = join(h.dataDir, 'toonify.png');
    const stylisedPath = join(h.dataDir, 'stylised.png');
    writeFileSync(gridPath, grid);
    writeFileSync(stylisedPath, await solidPng(32, 32));
    h.services.jobs.complete(job.id, {
      gridPath,
      reconstructionPath: join(h.dataDir, 'reconstruction.png'),
      stylisedPath,
      face: { index: 1, count: 2 },
      psnr: 21.5,
      steps: 300,
      projectionSeconds: 30,
      backend: 'wasm',
    });
    const reply = await h.fake.waitFor('the result edit', () => {
      const message = h.fake.originalMessage(record.raw.id);
      return message?.embeds[0]?.title === 'Toonified' ? message : undefined;
    });
    const upload = h.fake
      .requestsTo('/webhooks/:applicationId/:token/messages/:messageId', 'PATCH')
      .filter((r) => r.files.length)
      .at(-1)!;
    expect(upload.files[0]).toMatchObject({ filename: `toonify-${job.id}.png`, size: grid.length });
    expect(reply.attachments).toHaveLength(1);
    expect(h.fake.attachmentBytes(reply.attachments[0].id)?.equals(grid)).toBe(true);
    expect(reply.embeds[0].image?.url).toBe(reply.attachments[0].url);
    expect(reply.embeds[0].description).toContain('original | reconstruction | stylised');
    expect(buttons(reply).map((b) => [b.custom_id, b.label])).toEqual([[`vote:${job.id}`, 'Vote · 0']]);
    // What contests repost is the stylised face alone, never the grid with the photo in it.
    expect(h.services.votes.result(job.id)).toMatchObject({ kind: 'toonify', imagePath: stylisedPath });

    await h.fake.waitFor('the photo to be deleted', () => !existsSync(photoPath));
    expect(readdirSync(toonifyPhotosDir(h.dataDir))).toEqual([]);

    const { record: press } = await h.interact(
      h.fake.buttonPress({ customId: `vote:${job.id}`, message: reply, user: bob }),
    );
    expect(press.ack?.type).toBe(7);
    expect(h.services.votes.count(job.id)).toBe(1);
  });

  it('deletes the photo of a job cancelled before it ran', async () => {
    const { record } = await h.interact(toonifyCommand(photoUpload('me.jpg'), [option.integer('layer', 64)]));
    const job = toonifyJobs().at(-1)!;
    if (job.kind !== 'toonify') throw new Error('not a toonify job');
    expect(job.payload.layer).toBe(64);
    expect(existsSync(job.payload.photoPath)).toBe(true);
    await h.services.jobs.cancel(job.id, { userId: record.raw.member!.user.id, isAdmin: false });
    await h.fake.waitFor('the photo to be deleted', () => !existsSync(job.payload.photoPath));
  });

  it('refuses a text file privately, without downloading it', async () => {
    const notes = photoUpload('notes.txt', Buffer.from('not a face'), 'text/plain');
    const jobsBefore = toonifyJobs().length;
    const cdnBefore = h.fake.cdnRequests.length;
    const { record, outcome } = await h.interact(toonifyCommand(notes));
    expect(outcome.ok).toBe(false);
    const reply = h.fake.originalMessage(record.raw.id)!;
    expect(isEphemeral(reply)).toBe(true);
    expect(reply.embeds[0].title).toBe('"notes.txt" is not a JPEG, PNG or WebP photo');
    expect(reply.embeds[0].description).toContain('.jpg, .png or .webp');
    expect(h.fake.cdnRequests.length).toBe(cdnBefore);
    expect(toonifyJobs()).toHaveLength(jobsBefore);
  });

  it('refuses a file whose bytes are not a photo, whatever its name says, and keeps nothing of it', async () => {
    const fake = photoUpload('me.png', Buffer.from('%PDF-1.7 definitely not a png'), 'image/png');
    const jobsBefore = toonifyJobs().length;
    const { record, outcome } = await h.interact(toonifyCommand(fake));
    expect(outcome.ok).toBe(false);
    const whisper = h.fake.messages.get(record.followUpIds[0]);
    expect(isEphemeral(whisper)).toBe(true);
    expect(whisper!.embeds[0].title).toBe('"me.png" is not an image');
    expect(toonifyJobs()).toHaveLength(jobsBefore);
    expect(readdirSync(toonifyPhotosDir(h.dataDir))).toEqual([]);
  });

  it('refuses a member over their quota before downloading anything', async () => {
    const carol = makeUser({ username: 'carol' });
    h.services.jobs.policy = { maxQueued: 200, maxActivePerUser: 1, kinds: {} };
    try {
      // Her one allowed job is a /generate: the bot's own per-kind cooldown does not apply to the
      // /toonify below, so what refuses it is the queue's quota, asked before any download.
      const first = await h.interact(h.fake.slashCommand({ name: 'generate', user: carol, options: [] }));
      expect(first.outcome.ok, first.outcome.error).toBe(true);
      const jobsBefore = toonifyJobs().length;
      const cdnBefore = h.fake.cdnRequests.length;
      const photosBefore = readdirSync(toonifyPhotosDir(h.dataDir)).length;
      const { record, outcome } = await h.interact(
        toonifyCommand(photoUpload('big.png', await noisyPng(600, 600)), [], carol),
      );
      expect(outcome.ok).toBe(false);
      // Answered privately as the acknowledgement itself: no public "thinking" first.
      expect(record.ack?.type).toBe(4);
      const whisper = h.fake.originalMessage(record.raw.id);
      expect(isEphemeral(whisper)).toBe(true);
      expect(whisper!.embeds[0].title).toBe('You already have 1 job queued or running (limit 1)');
      expect(h.fake.cdnRequests.length).toBe(cdnBefore);
      expect(toonifyJobs()).toHaveLength(jobsBefore);
      expect(readdirSync(toonifyPhotosDir(h.dataDir))).toHaveLength(photosBefore);
    } finally {
      h.services.jobs.policy = undefined;
    }
  });

  it('refuses a layer above the model resolution before downloading', async () => {
    const cdnBefore = h.fake.cdnRequests.length;
    const { record, outcome } = await h.interact(
      toonifyCommand(photoUpload(), [option.integer('layer', 512)]),
    );
    expect(outcome.ok).toBe(false);
    const whisper = h.fake.messages.get(record.followUpIds[0]);
    expect(whisper!.embeds[0].title).toBe("Layer 512px is above the model's resolution (256px)");
    expect(h.fake.cdnRequests.length).toBe(cdnBefore);
  });

  it('is listed by /help', async () => {
    const { record } = await h.interact(h.fake.slashCommand({ name: 'help' }));
    expect(h.fake.originalMessage(record.raw.id)!.embeds[0].description).toContain('/toonify photo:');
  });
});

describe('network', () => {
  it('never connected anywhere but 127.0.0.1', () => {
    expect(watch.nonLocal()).toEqual([]);
  });
});
