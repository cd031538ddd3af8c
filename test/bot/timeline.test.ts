// What a member sees, message by message, for /generate, /blend, /toonify and /finetune, driven on the
// fake Discord with a job that waits a little, runs with progress and ends. The fake keeps every
// create, edit and delete (messageHistory); this suite turns that into a timeline, checks that no
// edit repeats what the member already sees, and with FACESTYLE_TIMELINE_OUT=<file> writes the
// timeline as Markdown (how docs/bot.md's tables were made).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { APIInteraction, APIMessage } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../src/jobs/types.ts';
import type { MessageEvent } from '../support/fake-discord/index.ts';
import { option } from '../support/fake-discord/index.ts';
import { ADMIN_ROLE_ID, BotHarness, buttons, isEphemeral, solidPng } from './support/harness.ts';

let h: BotHarness;
const timelines: Array<{ command: string; rows: TimelineRow[] }> = [];

/** The bot's own grace before "Queued" (production value); pings scaled from 20 s down to 1 s. */
const TIMING = { progressRefreshMs: 50, positionRefreshMs: 250, queuedGraceMs: 1_500, pingAfterMs: 1_000 };

beforeAll(async () => {
  // Real pacing, shortened: waiting jobs are re-read often, so redundant edits would show.
  h = await BotHarness.start({ timing: TIMING });
  driftingEtas(h);
});

/**
 * A real queue re-estimates a waiting job's ETA as the job ahead of it runs: the seconds left go
 * down with the clock, give or take a second of estimation noise. MemoryJobs reports a fixed ETA;
 * this makes `get` report what the real queue would.
 */
function driftingEtas(harness: BotHarness): void {
  const jobs = harness.services.jobs;
  const get = jobs.get.bind(jobs);
  let reads = 0;
  jobs.get = async (id: string) => {
    const job = await get(id);
    if (job?.status !== 'queued' || job.etaSeconds === null) return job;
    const elapsed = (Date.now() - job.createdAt) / 1000;
    const noise = reads++ % 2 ? 1 : -1;
    return { ...job, etaSeconds: Math.max(1, Math.round(job.etaSeconds - elapsed + noise)) };
  };
}

afterAll(async () => {
  const out = process.env.FACESTYLE_TIMELINE_OUT;
  if (out) writeFileSync(out, timelines.map((t) => markdown(t.command, t.rows)).join('\n'));
  await h?.close();
});

interface TimelineRow {
  ms: number;
  op: MessageEvent['op'];
  /** m1, m2...: which message, in order of first appearance. */
  message: string;
  visibility: 'public' | 'only you';
  shows: string;
}

/** One line for what a message shows: title, text, images (⬆ when just uploaded) and buttons. */
function describeMessage(message: APIMessage, before?: APIMessage): string {
  const parts: string[] = [];
  if (message.content) parts.push(message.content);
  for (const embed of message.embeds) {
    parts.push([embed.title, embed.description].filter(Boolean).join(': '));
    if (embed.image) parts.push('[image]');
  }
  for (const a of message.attachments) {
    const uploaded = !before?.attachments.some((b) => b.id === a.id);
    parts.push(`[${uploaded ? '⬆ ' : ''}${a.filename} ${a.width ?? '?'}x${a.height ?? '?'}]`);
  }
  const labels = buttons(message).map((b) => b.label ?? b.emoji?.name ?? '?');
  if (labels.length) parts.push(`buttons: ${labels.join(', ')}`);
  if ((message.flags ?? 0) & (1 << 7)) parts.push('(thinking…)');
  return parts
    .join(' · ')
    .replace(/<t:\d+:R>/g, '<time>')
    .replace(/`?j[0-9a-z]{4,}`?/g, '<job>')
    .replace(/\s*\n\s*/g, ' / ');
}

/** What changed in the fake Discord since `from`, as timeline rows. */
function timelineSince(from: number, startedAt: number): TimelineRow[] {
  const names = new Map<string, string>();
  const previous = new Map<string, APIMessage>();
  return h.fake.messageHistory.slice(from).map((event) => {
    if (!names.has(event.message.id)) names.set(event.message.id, `m${names.size + 1}`);
    const shows =
      event.op === 'delete' ? '(deleted)' : describeMessage(event.message, previous.get(event.message.id));
    previous.set(event.message.id, event.message);
    return {
      ms: event.at - startedAt,
      op: event.op,
      message: names.get(event.message.id)!,
      visibility: isEphemeral(event.message) ? 'only you' : 'public',
      shows,
    };
  });
}

function markdown(command: string, rows: TimelineRow[]): string {
  const edits = rows.filter((r) => r.op === 'edit').length;
  const lines = [
    `#### ${command}: ${new Set(rows.map((r) => r.message)).size} messages, ${edits} edits`,
    '',
    '| ms | what | message | seen by | shows |',
    '| ---: | --- | --- | --- | --- |',
    ...rows.map(
      (r) => `| ${r.ms} | ${r.op} | ${r.message} | ${r.visibility} | ${r.shows.replace(/\|/g, '\\|')} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

/** Consecutive edits of one message that leave it looking the same: noise for the member. */
function repeatedEdits(rows: TimelineRow[]): TimelineRow[] {
  const last = new Map<string, string>();
  const repeats: TimelineRow[] = [];
  for (const row of rows) {
    const look = row.shows.replace(/⬆ /g, '');
    if (row.op === 'edit' && last.get(row.message) === look) repeats.push(row);
    last.set(row.message, look);
  }
  return repeats;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs one command through a job's life: `wait` ms queued (a job ahead of it), `steps` progress
 * reports, then the result. Returns the rows of the timeline.
 */
async function drive(
  command: string,
  raw: APIInteraction,
  finish: (job: JobInfo) => Promise<unknown>,
  options: { waitMs: number; steps: Array<{ fraction: number; stage: string; previewPath?: string }> },
): Promise<TimelineRow[]> {
  const from = h.fake.messageHistory.length;
  const startedAt = Date.now();
  const jobsBefore = h.services.jobs.jobs.size;
  const handled = h.interact(raw);
  const job = await h.fake.waitFor(`${command}'s job`, () =>
    [...h.services.jobs.jobs.values()].slice(jobsBefore).find((j) => j.kind !== 'noop'),
  );
  // The worker takes the job `waitMs` after the command, whatever the bot is doing.
  await sleep(Math.max(0, startedAt + options.waitMs - Date.now()));
  h.services.jobs.start(job.id);
  const { outcome } = await handled;
  expect(outcome.ok, outcome.error).toBe(true);
  for (const step of options.steps) {
    h.services.jobs.progress(job.id, step);
    await sleep(150);
  }
  h.services.jobs.complete(job.id, await finish(job));
  await h.fake.waitFor(`${command}'s result`, () =>
    h.fake.messageHistory
      .slice(from)
      .some((e) =>
        e.message.embeds.some((embed) => /Done|Toonified|finished|Blend|Seed/.test(embed.title ?? '')),
      ),
  );
  await sleep(500);
  const rows = timelineSince(from, startedAt);
  timelines.push({ command, rows });
  return rows;
}

describe('what a member sees', () => {
  it('/generate', { timeout: 15_000 }, async () => {
    const grid = join(h.dataDir, 'timeline-grid.png');
    writeFileSync(grid, await solidPng(256, 64));
    const rows = await drive(
      '/generate',
      h.fake.slashCommand({ name: 'generate', options: [option.integer('seed', 7)] }),
      async () => ({ imagePaths: [], gridPath: grid }),
      // Starts at once (within the grace).
      { waitMs: 300, steps: [{ fraction: 0.5, stage: 'generating' }] },
    );
    expect(rows.length).toBeGreaterThan(1);
    expect(repeatedEdits(rows)).toEqual([]);
  });

  it('/blend', { timeout: 15_000 }, async () => {
    const grid = join(h.dataDir, 'timeline-blend.png');
    writeFileSync(grid, await solidPng(192, 256));
    const rows = await drive(
      '/blend',
      h.fake.slashCommand({
        name: 'blend',
        options: [option.integer('epochs', 20), option.integer('layer', 32), option.string('seeds', '1-4')],
      }),
      async () => ({ gridPath: grid }),
      // Waits 3 s behind another job (longer than the grace), then runs.
      { waitMs: 3_000, steps: [{ fraction: 0.5, stage: 'blending' }] },
    );
    expect(repeatedEdits(rows)).toEqual([]);
  });

  it('/toonify', { timeout: 15_000 }, async () => {
    const photo = h.fake.uploadAttachment({
      filename: 'me.png',
      bytes: await solidPng(64, 64, [220, 180, 150]),
      contentType: 'image/png',
    });
    const preview = join(h.dataDir, 'timeline-toonify-preview.png');
    writeFileSync(preview, await solidPng(64, 32, [10, 10, 200]));
    const grid = join(h.dataDir, 'timeline-toonify.png');
    writeFileSync(grid, await solidPng(192, 80));
    const rows = await drive(
      '/toonify',
      h.fake.slashCommand({
        name: 'toonify',
        options: [option.attachment('photo', photo)],
        attachments: [photo],
      }),
      async () => ({
        gridPath: grid,
        reconstructionPath: grid,
        stylisedPath: grid,
        face: { index: 0, count: 1 },
        psnr: 20,
        steps: 300,
        projectionSeconds: 30,
        backend: 'wasm',
      }),
      {
        // Starts within the grace; with its progress it takes longer than the (scaled) ping time.
        waitMs: 800,
        steps: [
          { fraction: 0.3, stage: 'fitting the face: step 90/300', previewPath: preview },
          { fraction: 0.6, stage: 'fitting the face: step 180/300', previewPath: preview },
        ],
      },
    );
    expect(repeatedEdits(rows)).toEqual([]);
  });

  it('/finetune', { timeout: 15_000 }, async () => {
    const zip = h.fake.uploadAttachment({
      filename: 'faces.zip',
      bytes: Buffer.from('PK\x03\x04timeline'),
      contentType: 'application/zip',
    });
    const preview = join(h.dataDir, 'timeline-finetune-preview.png');
    writeFileSync(preview, await solidPng(128, 128, [10, 200, 10]));
    const rows = await drive(
      '/finetune',
      h.fake.slashCommand({
        name: 'finetune',
        roles: [ADMIN_ROLE_ID],
        options: [
          option.attachment('dataset', zip),
          option.string('name', 'timeline'),
          option.integer('epochs', 4),
          option.integer('snapshot_every', 2),
        ],
        attachments: [zip],
      }),
      async () => ({
        snapshots: [
          { epoch: 2, checkpointPath: join(h.dataDir, 'e2.safetensors') },
          { epoch: 4, checkpointPath: join(h.dataDir, 'e4.safetensors'), previewPath: preview },
        ],
      }),
      {
        waitMs: 1_000,
        steps: [
          { fraction: 0.5, stage: 'epoch 2/4', previewPath: preview },
          { fraction: 0.75, stage: 'epoch 3/4', previewPath: preview },
        ],
      },
    );
    expect(repeatedEdits(rows)).toEqual([]);
  });
});
