// /finetune gives a model name back whenever an attempt does not end in a queued job: the run
// folder it reserved and the dataset it built under the name are removed, so a retry under the
// same name (with the same or another archive) works.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { APIAttachment } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuotaExceededError } from '../../src/jobs/errors.ts';
import { option, watchOutboundConnections } from '../support/fake-discord/index.ts';
import { ADMIN_ROLE_ID, BotHarness } from './support/harness.ts';

const watch = watchOutboundConnections();
let h: BotHarness;

beforeAll(async () => {
  h = await BotHarness.start();
});

afterAll(async () => {
  await h?.close();
  watch.stop();
});

const zip = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), randomBytes(2048)]);

async function finetune(name: string) {
  const attachment: APIAttachment = h.fake.uploadAttachment({
    filename: 'faces.zip',
    bytes: zip,
    contentType: 'application/zip',
  });
  return h.interact(
    h.fake.slashCommand({
      name: 'finetune',
      roles: [ADMIN_ROLE_ID],
      options: [
        option.attachment('dataset', attachment),
        option.string('name', name),
        option.integer('epochs', 10),
      ],
      attachments: [attachment],
    }),
  );
}

describe('/finetune names after a refusal', () => {
  it('releases the run folder and the dataset when the submit is refused, and a retry works', async () => {
    const runDir = join(h.dataDir, 'runs', 'retry');
    const datasetDir = join(h.dataDir, 'datasets', 'retry');
    h.services.jobs.failNextSubmit = new QuotaExceededError('daily', 'the queue is full, try again later');
    const refused = await finetune('retry');
    expect(refused.outcome.ok).toBe(false);
    expect(h.services.datasets.imported.at(-1)?.name).toBe('retry');
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(datasetDir)).toBe(false);

    const retried = await finetune('retry');
    expect(retried.outcome.ok).toBe(true);
    const job = [...h.services.jobs.jobs.values()].at(-1)!;
    expect(job.kind).toBe('finetune');
    expect(job.payload).toMatchObject({ runDir, datasetDir });
    expect(existsSync(runDir)).toBe(true);
  });

  it('releases the reservation when the download fails', async () => {
    const attachment = h.fake.uploadAttachment({
      filename: 'faces.zip',
      bytes: zip,
      contentType: 'application/zip',
    });
    h.fake.expireAttachment(attachment.id);
    const { outcome } = await h.interact(
      h.fake.slashCommand({
        name: 'finetune',
        roles: [ADMIN_ROLE_ID],
        options: [option.attachment('dataset', attachment), option.string('name', 'expired')],
        attachments: [attachment],
      }),
    );
    expect(outcome.ok).toBe(false);
    expect(existsSync(join(h.dataDir, 'runs', 'expired'))).toBe(false);
  });

  it('refuses a name another attempt holds before downloading, and leaves its folder alone', async () => {
    const held = join(h.dataDir, 'runs', 'held');
    mkdirSync(held, { recursive: true });
    writeFileSync(join(held, 'progress.jsonl'), '{}\n');
    const cdnBefore = h.fake.cdnRequests.length;
    const { outcome } = await finetune('held');
    expect(outcome.ok).toBe(false);
    expect(h.fake.cdnRequests.length).toBe(cdnBefore);
    expect(existsSync(join(held, 'progress.jsonl'))).toBe(true);
  });
});
