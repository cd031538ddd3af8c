// /finetune on the report's kind of data: 60 cartoon faces (30 facesjs people, 30 DiceBear lorelei
// avatars, rendered here) with default options, end to end on the fake Discord. The bot queues a
// `dataset` job; this test plays the worker with the real dataset handler (face detection and all).
// The photo-trained detector finds few of these faces, so `align:faces` must refuse the set with a
// hint, and the default (auto) must centre-crop the rest and start the fine-tune.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueuedDatasetIntake } from '../../src/bot/datasets.ts';
import { renderDemoFace } from '../../src/demo/data.ts';
import { datasetHandler } from '../../src/jobs/handlers/dataset.ts';
import type { JobEvent } from '../../src/jobs/types.ts';
import { logger } from '../../src/log.ts';
import { buildZip } from '../datasets/helpers/zip-writer.ts';
import { option } from '../support/fake-discord/index.ts';
import { ADMIN_ROLE_ID, BotHarness, isEphemeral } from './support/harness.ts';

let h: BotHarness;
let zip: Buffer;
/** The first 12 of them: enough to show the refusal, quicker to detect faces in. */
let fewZip: Buffer;
let stopWorker: () => void;

/** Runs every queued `dataset` job with the production handler, as a worker would. */
function datasetWorker(harness: BotHarness): () => void {
  const jobs = harness.services.jobs;
  return jobs.subscribe((event: JobEvent) => {
    if (event.type !== 'queued' || event.job.kind !== 'dataset') return;
    const { id, payload } = event.job;
    setImmediate(async () => {
      jobs.start(id);
      try {
        const result = await datasetHandler(payload, {
          jobId: id,
          signal: new AbortController().signal,
          progress: (update) => jobs.progress(id, update),
          artifactsDir: harness.dataDir,
          log: logger('dataset-worker'),
          attempt: 1,
          maxAttempts: 1,
        });
        jobs.complete(id, result);
      } catch (err) {
        jobs.fail(id, { code: 'invalid', message: (err as Error).message });
      }
    });
  });
}

beforeAll(async () => {
  h = await BotHarness.start();
  // The production intake, on the harness's queue (the harness records datasets otherwise).
  mkdirSync(join(h.dataDir, 'uploads'), { recursive: true });
  (h.services as { datasets: unknown }).datasets = new QueuedDatasetIntake(
    h.services.jobs,
    join(h.dataDir, 'datasets'),
  );
  stopWorker = datasetWorker(h);
  const entries = [];
  for (let i = 0; i < 30; i++) {
    entries.push({ name: `facesjs/${i}.png`, data: await renderDemoFace('faces', i, 256) });
    entries.push({ name: `lorelei/${i}.png`, data: await renderDemoFace('lorelei', i, 256) });
  }
  zip = buildZip(entries);
  fewZip = buildZip(entries.slice(0, 12));
}, 120_000);

afterAll(async () => {
  stopWorker?.();
  await h?.close();
});

function finetune(name: string, extra: ReturnType<typeof option.string>[] = [], bytes = zip) {
  const attachment = h.fake.uploadAttachment({
    filename: 'cartoons.zip',
    bytes,
    contentType: 'application/zip',
  });
  return h.fake.slashCommand({
    name: 'finetune',
    roles: [ADMIN_ROLE_ID],
    options: [option.attachment('dataset', attachment), option.string('name', name), ...extra],
    attachments: [attachment],
  });
}

describe('/finetune on 60 cartoon faces', () => {
  it('refuses some of them with align:faces, saying why and what to try, in words without server paths', async () => {
    const { record, outcome } = await h.interact(
      finetune('cartoons-faces', [option.string('align', 'faces')], fewZip),
      180_000,
    );
    expect(outcome.ok).toBe(false);
    const reply = h.fake.originalMessage(record.raw.id)!;
    expect(isEphemeral(reply)).toBe(true);
    expect(reply.embeds[0].title).toMatch(/^Only \d+ usable images?, at least 50 needed \(.*no-face/);
    expect(reply.embeds[0].description).toContain('align:auto');
    expect([...h.services.jobs.jobs.values()].some((j) => j.kind === 'finetune')).toBe(false);
  }, 180_000);

  it('passes with the default options: faces where detected, the rest centre-cropped, then the fine-tune is queued', async () => {
    const { record, outcome } = await h.interact(finetune('cartoons'), 180_000);
    expect(outcome.ok, outcome.error).toBe(true);
    const dataset = [...h.services.jobs.jobs.values()].find(
      (j) => j.kind === 'dataset' && j.meta.modelName === 'cartoons',
    )!;
    expect(dataset.payload).toMatchObject({ align: 'auto', minImages: 50 });
    expect(dataset.status).toBe('completed');
    const result = dataset.kind === 'dataset' ? dataset.result! : undefined;
    expect(result!.images).toBeGreaterThanOrEqual(50);
    expect(result!.keptBy.center).toBeGreaterThan(0);
    const summary = h.fake.originalMessage(record.raw.id)!;
    expect(summary.content).toContain(`Dataset for **cartoons**: ${result!.images} images kept.`);
    expect(summary.content).toMatch(/centre-cropped/);
    expect(summary.attachments.map((a) => a.filename)).toEqual(['contact-sheet.png']);
    const job = [...h.services.jobs.jobs.values()].find((j) => j.kind === 'finetune')!;
    expect(job.payload).toMatchObject({ datasetDir: result!.datasetDir, base: 'ffhq256' });
  }, 180_000);
});
