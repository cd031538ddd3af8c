// The executor in-process (the worker process runs the same code): outcomes, batches, aborts.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { type ExecJob, type ExecOutcome, JobExecutor } from '../../src/jobs/executor.ts';
import { HandlerRegistry } from '../../src/jobs/handlers/registry.ts';
import type { KindMap } from '../../src/jobs/kinds.ts';
import type { JobProgress } from '../../src/jobs/types.ts';

type Kinds = KindMap & {
  work: {
    payload: { ms: number; steps?: number; fail?: 'oom' | 'user' | 'bug'; ignoreAbort?: boolean };
    result: { ok: true };
  };
  gen: { payload: { seed: number; oomAlone?: boolean }; result: { seed: number; size: number } };
};

const root = mkdtempSync(join(tmpdir(), 'facestyle-exec-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let oomNotices = 0;
const registry = new HandlerRegistry<Kinds>()
  .register('work', async (payload, ctx) => {
    const steps = payload.steps ?? 1;
    for (let step = 1; step <= steps; step++) {
      if (payload.ignoreAbort) await sleep(payload.ms / steps);
      else await sleep(payload.ms / steps, undefined, { signal: ctx.signal });
      ctx.progress({ fraction: step / steps, stage: step < steps ? 'working' : 'finishing' });
    }
    if (payload.fail === 'oom') throw new Error('WebGPU: Out of memory allocating 1.2 GB');
    if (payload.fail === 'user') throw new UserError('that image has no face in it');
    if (payload.fail === 'bug') throw new TypeError('x is undefined');
    return { ok: true as const };
  })
  .registerBatch(
    'gen',
    async (items) => {
      await sleep(30);
      // A stand-in GPU that holds two images at a time, and cannot hold an `oomAlone` one at all.
      if (items.length > 2) throw new Error('out of memory');
      if (items.some((item) => item.payload.oomAlone)) throw new Error('OOM when allocating tensor');
      return items.map((item) =>
        item.payload.seed === 13 ? new Error('bad seed') : { seed: item.payload.seed, size: items.length },
      );
    },
    { maxBatch: 4 },
  )
  .onOutOfMemory(() => {
    oomNotices++;
  });

function job(id: string, kind: string, payload: unknown, extra: Partial<ExecJob> = {}): ExecJob {
  return { id, kind, payload, units: 1, attempt: 1, maxAttempts: 2, timeLimitMs: 10_000, ...extra };
}

function collector() {
  const outcomes = new Map<string, ExecOutcome>();
  const progress: JobProgress[] = [];
  return {
    outcomes,
    progress,
    sink: {
      progress: (_id: string, p: JobProgress) => progress.push(p),
      done: (id: string, outcome: ExecOutcome) => {
        if (outcomes.has(id)) throw new Error(`${id} reported twice`);
        outcomes.set(id, outcome);
      },
    },
  };
}

const executor = (
  options: { abortGraceMs?: number; onStuck?: (id: string) => void; maxBatch?: number } = {},
) => new JobExecutor(registry, { artifactsRoot: root, progressIntervalMs: 40, ...options });

describe('JobExecutor', () => {
  it('runs a job and throttles its progress', async () => {
    const c = collector();
    await executor().run([job('j1', 'work', { ms: 200, steps: 40 })], c.sink);
    const outcome = c.outcomes.get('j1');
    expect(outcome).toMatchObject({ status: 'completed', result: { ok: true }, batchSize: 1 });
    expect(outcome?.busyMs).toBeGreaterThanOrEqual(190);
    // 40 reports in 200 ms at most one per 40 ms, plus the stage change and the last one.
    expect(c.progress.length).toBeLessThan(15);
    expect(c.progress.length).toBeGreaterThan(2);
    expect(c.progress.at(-1)).toMatchObject({ fraction: 1, stage: 'finishing' });
    expect(existsSync(join(root, 'j1'))).toBe(true);
  });

  it('turns handler errors into failures a user can read, internal ones into a log reference', async () => {
    const c = collector();
    const logged: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const capture = (msg: string, fields?: Record<string, unknown>) => logged.push({ msg, fields });
    const run = new JobExecutor(registry, {
      artifactsRoot: root,
      log: { debug: capture, info: capture, warn: capture, error: capture },
    });
    await run.run([job('oom', 'work', { ms: 1, fail: 'oom' })], c.sink);
    await run.run([job('user', 'work', { ms: 1, fail: 'user' })], c.sink);
    await run.run([job('bug', 'work', { ms: 1, fail: 'bug' })], c.sink);
    await run.run([job('none', 'nothing', {})], c.sink);
    const failureOf = (id: string) => (c.outcomes.get(id) as { failure: unknown }).failure;
    expect(failureOf('oom')).toEqual({
      code: 'oom',
      message: 'the GPU ran out of memory; try fewer images or a smaller model',
    });
    expect(failureOf('user')).toEqual({ code: 'invalid', message: 'that image has no face in it' });
    const bug = failureOf('bug') as { code: string; message: string };
    expect(bug.code).toBe('error');
    const reference = /^an internal error stopped the job \(log reference ([0-9a-f]{8})\)$/.exec(
      bug.message,
    )?.[1];
    expect(reference, bug.message).toBeDefined();
    expect(bug.message).not.toContain('undefined');
    // The full error, with its stack, is in the log under that reference.
    const entry = logged.find((line) => line.fields?.reference === reference);
    expect(entry?.fields).toMatchObject({ jobId: 'bug', kind: 'work', error: 'x is undefined' });
    expect(String(entry?.fields?.stack)).toContain('TypeError: x is undefined');
    expect(logged.find((line) => line.fields?.jobId === 'oom')?.fields?.error).toContain(
      'Out of memory allocating',
    );
    expect(failureOf('none')).toMatchObject({ code: 'unsupported' });
  });

  it('stops a job at its time limit', async () => {
    const c = collector();
    await executor().run([job('slow', 'work', { ms: 5_000, steps: 50 }, { timeLimitMs: 100 })], c.sink);
    expect(c.outcomes.get('slow')).toMatchObject({ status: 'failed', failure: { code: 'timeout' } });
  });

  it('gives up a handler that ignores its abort signal and reports it stuck', async () => {
    const c = collector();
    const stuck: string[] = [];
    const run = executor({ abortGraceMs: 100, onStuck: (id) => stuck.push(id) });
    void run.run([job('hung', 'work', { ms: 3_000, ignoreAbort: true })], c.sink);
    await sleep(20);
    expect(run.abort('hung', { code: 'cancelled', by: 'its owner' })).toBe(true);
    await sleep(200);
    expect(stuck).toEqual(['hung']);
    expect(c.outcomes.get('hung')).toMatchObject({
      failure: { code: 'cancelled', message: 'cancelled by its owner' },
    });
  });

  it('reports a job interrupted by shutdown, but keeps a result that arrived anyway', async () => {
    const c = collector();
    const run = executor();
    const running = run.run([job('cut', 'work', { ms: 2_000, steps: 20 })], c.sink);
    await sleep(50);
    run.abortAll({ code: 'shutdown' });
    await running;
    expect(c.outcomes.get('cut')?.status).toBe('interrupted');
    expect(run.runningIds()).toEqual([]);
  });

  it('runs a batch in one call and fails only the item the handler failed', async () => {
    const c = collector();
    await executor().run(
      [1, 13].map((seed) => job(`g${seed}`, 'gen', { seed })),
      c.sink,
    );
    expect(c.outcomes.get('g1')).toMatchObject({
      status: 'completed',
      result: { seed: 1, size: 2 },
      batchSize: 2,
    });
    expect(c.outcomes.get('g13')).toMatchObject({
      status: 'failed',
      failure: { code: 'error', message: expect.stringMatching(/^an internal error stopped the job/) },
    });
  });

  it('splits a batch that ran out of memory and runs its jobs one by one', async () => {
    const c = collector();
    const before = oomNotices;
    await executor().run(
      [
        job('a', 'gen', { seed: 1 }),
        job('b', 'gen', { seed: 2, oomAlone: true }),
        job('c', 'gen', { seed: 3 }),
      ],
      c.sink,
    );
    expect(oomNotices).toBeGreaterThan(before);
    expect(c.outcomes.get('a')).toMatchObject({ status: 'completed', result: { size: 1 }, batchSize: 1 });
    expect(c.outcomes.get('c')).toMatchObject({ status: 'completed', result: { size: 1 } });
    expect(c.outcomes.get('b')).toMatchObject({ status: 'failed', failure: { code: 'oom' } });
  });

  it('lets one job leave a batch when cancelled while the rest complete', async () => {
    const c = collector();
    const run = executor();
    const running = run.run([job('x1', 'gen', { seed: 1 }), job('x2', 'gen', { seed: 2 })], c.sink);
    // Abort once the batch runs (a loaded machine may take longer than a few ms to start it).
    while (!run.runningIds().includes('x2')) await sleep(1);
    expect(run.abort('x2', { code: 'cancelled', by: 'admin root' })).toBe(true);
    while (!c.outcomes.has('x2')) await sleep(1);
    expect(c.outcomes.has('x1')).toBe(false); // it left while the batch still ran
    expect(c.outcomes.get('x2')).toMatchObject({
      failure: { code: 'cancelled', message: 'cancelled by admin root' },
    });
    await running;
    expect(c.outcomes.get('x1')).toMatchObject({ status: 'completed', batchSize: 2 });
  });

  it('caps batches with maxBatch', () => {
    expect(executor().batchLimit('gen')).toBe(4);
    expect(executor({ maxBatch: 1 }).batchLimit('gen')).toBe(1);
    expect(executor().batchLimits()).toEqual({ gen: 4 });
    expect(executor().batchLimit('work')).toBe(1);
  });
});
