// What members see of a failed job: a short reason and a log reference, never the internal error's
// own text, which goes to the worker log. The failure comes from the real executor (the code the
// worker process runs), then travels to the bot's status message on the fake Discord.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExecOutcome, JobExecutor } from '../../src/jobs/executor.ts';
import { HandlerRegistry } from '../../src/jobs/handlers/registry.ts';
import type { JobFailure } from '../../src/jobs/types.ts';
import type { Logger } from '../../src/log.ts';
import { makeUser, option, watchOutboundConnections } from '../support/fake-discord/index.ts';
import { BotHarness } from './support/harness.ts';

const watch = watchOutboundConnections();
let h: BotHarness;
const root = mkdtempSync(join(tmpdir(), 'facestyle-failures-'));
const RAW = "ENOENT: no such file or directory, open '/srv/facestyle/secret-runs/ckpt.safetensors'";

beforeAll(async () => {
  h = await BotHarness.start();
});

afterAll(async () => {
  await h?.close();
  rmSync(root, { recursive: true, force: true });
  watch.stop();
});

/** Runs a handler that throws `err` through the worker's executor; returns the failure and the log. */
async function failThroughExecutor(err: Error): Promise<{ failure: JobFailure; log: string[] }> {
  const lines: string[] = [];
  const capture = (msg: string, fields?: Record<string, unknown>) =>
    lines.push(`${msg} ${JSON.stringify(fields)}`);
  const log: Logger = { debug: capture, info: capture, warn: capture, error: capture };
  const registry = new HandlerRegistry().register('generate', async () => {
    throw err;
  });
  let outcome: ExecOutcome | undefined;
  await new JobExecutor(registry, { artifactsRoot: root, log }).run(
    [
      {
        id: 'job-1',
        kind: 'generate',
        payload: {},
        units: 1,
        attempt: 1,
        maxAttempts: 1,
        timeLimitMs: 10_000,
      },
    ],
    { progress: () => {}, done: (_id, o) => (outcome = o) },
  );
  if (outcome?.status !== 'failed') throw new Error('the job did not fail');
  return { failure: outcome.failure, log: lines };
}

async function statusAfterFailure(failure: JobFailure) {
  const { record } = await h.interact(
    h.fake.slashCommand({ name: 'generate', user: makeUser(), options: [option.integer('seed', 3)] }),
  );
  const job = [...h.services.jobs.jobs.values()].at(-1)!;
  h.services.jobs.start(job.id);
  h.services.jobs.fail(job.id, failure);
  const message = await h.fake.waitFor('the failed status', () => {
    const reply = h.fake.originalMessage(record.raw.id);
    return reply?.embeds[0]?.title?.includes('Failed') ? reply : undefined;
  });
  return { job, text: JSON.stringify(message) };
}

describe('a job that fails with an internal error', () => {
  it('shows members a reason and the log reference, and logs the error itself', async () => {
    const { failure, log } = await failThroughExecutor(new Error(RAW));
    const reference = /log reference ([0-9a-f]{8})/.exec(failure.message)?.[1];
    expect(reference).toBeDefined();
    const { text } = await statusAfterFailure(failure);
    expect(text).toContain('Something went wrong on our side');
    expect(text).toContain(reference);
    for (const secret of ['ENOENT', 'secret-runs', 'safetensors']) expect(text).not.toContain(secret);
    const logged = log.find((line) => line.includes(reference!));
    expect(logged).toContain('ENOENT');
    expect(logged).toContain('secret-runs');
  });

  it('hides raw text stored under the internal code by an older version, quoting the job id', async () => {
    const { job, text } = await statusAfterFailure({ code: 'error', message: `the job failed: ${RAW}` });
    expect(text).not.toContain('ENOENT');
    expect(text).not.toContain('secret-runs');
    expect(text).toContain(`quote \`${job.id}\``);
  });

  it('keeps the reasons written for members as they are', async () => {
    const { text } = await statusAfterFailure({ code: 'invalid', message: 'that dataset has no faces' });
    expect(text).toContain('that dataset has no faces');
  });
});

describe('network', () => {
  it('never connected anywhere but 127.0.0.1', () => {
    expect(watch.nonLocal()).toEqual([]);
  });
});
