// A job state change the store refuses (disk full, database locked) is not acted on: a start that
// cannot be stored does not run the job, and an outcome that cannot be stored is not acknowledged
// (no event, no answer to waiters) until the store takes it - the job is neither lost nor run twice.
// The failure is injected into the store of the embedded queue; the worker is a real process.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { JobStore } from '../../src/jobs/job-store.ts';
import type { JobEvent, JobRecord } from '../../src/jobs/types.ts';
import type { TestKinds } from './fixtures/test-kinds.ts';
import { createHarness, type QueueHarness, type TestQueue, until } from './harness.ts';

const put = JobStore.prototype.put;
let refuse: ((record: JobRecord) => boolean) | undefined;
const refusedWrites: string[] = [];
vi.spyOn(JobStore.prototype, 'put').mockImplementation(function (this: JobStore, record: JobRecord) {
  if (refuse?.(record)) {
    refusedWrites.push(`${record.id}:${record.status}`);
    return Promise.reject(new Error('SQLITE_FULL: database or disk is full'));
  }
  return put.call(this, record);
});

let harness: QueueHarness;
let queue: TestQueue;
let reader: JobStore;
const events: Array<JobEvent<TestKinds>> = [];

beforeAll(async () => {
  harness = createHarness('embedded');
  queue = await harness.open();
  queue.subscribe((event) => events.push(event));
  reader = await JobStore.open(harness.config.storeUrl, harness.config.prefix);
});

afterAll(async () => {
  refuse = undefined;
  await reader?.close();
  await harness?.dispose();
});

/** Starts of the job the marker recorded (test.mark writes a start and an end line a run). */
function runs(marker: string): number {
  if (!existsSync(marker)) return 0;
  return readFileSync(marker, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('start ')).length;
}

function eventsOf(id: string): string[] {
  return events
    .filter((event) => event.job.id === id && event.type !== 'progress')
    .map((event) => event.type);
}

describe('embedded queue: store write failures during job state changes', () => {
  it('holds a finished job whose completion cannot be stored, then acknowledges it once, run once', async () => {
    const marker = join(harness.dataDir, 'completion.marker');
    refuse = (record) => record.status === 'completed';
    const job = await queue.submit({
      kind: 'test.mark',
      payload: { ms: 100, marker },
      actor: { userId: 'u' },
    });
    await until('the job to run', () => runs(marker) === 1 || undefined);
    // Longer than one round of write retries: the outcome is held, not dropped or reported.
    await sleep(4_500);
    expect(refusedWrites.filter((write) => write === `${job.id}:completed`).length).toBeGreaterThan(1);
    expect(eventsOf(job.id)).toEqual(['queued', 'started']);
    expect((await queue.get(job.id))?.status).toBe('running');
    expect((await reader.get(job.id))?.status).toBe('running');

    refuse = undefined;
    const done = await queue.waitFor(job.id, { timeoutMs: 10_000 });
    expect(done.status).toBe('completed');
    expect(done.attempt).toBe(1);
    expect((await reader.get(job.id))?.status).toBe('completed');
    await sleep(300);
    expect(eventsOf(job.id)).toEqual(['queued', 'started', 'completed']);
    expect(runs(marker)).toBe(1);
  });

  it('does not run a job whose start cannot be stored, and runs it once the store takes it', async () => {
    const marker = join(harness.dataDir, 'start.marker');
    refuse = (record) => record.status === 'running';
    const job = await queue.submit({
      kind: 'test.mark',
      payload: { ms: 50, marker },
      actor: { userId: 'u' },
    });
    await until('a refused start', () => refusedWrites.includes(`${job.id}:running`) || undefined);
    await sleep(4_000);
    expect(runs(marker)).toBe(0);
    expect(eventsOf(job.id)).toEqual(['queued']);
    expect((await queue.get(job.id))?.status).toBe('queued');
    expect((await reader.get(job.id))?.status).toBe('queued');

    refuse = undefined;
    const done = await queue.waitFor(job.id, { timeoutMs: 15_000 });
    expect(done.status).toBe('completed');
    expect(done.attempt).toBe(1);
    expect(runs(marker)).toBe(1);
    expect(eventsOf(job.id)).toEqual(['queued', 'started', 'completed']);
  });
});
