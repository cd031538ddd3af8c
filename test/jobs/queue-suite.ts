// The one suite both queue implementations must pass: jobs, events, positions and ETAs, lanes,
// priorities, batching, policies, cancellation, and faults done for real (kill -9 of the worker
// process and of the process that owns the queue, OOM, time limits, hung handlers).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  JobAlreadyFinishedError,
  JobNotFoundError,
  NotAllowedError,
  QueueFullError,
  QuotaExceededError,
} from '../../src/jobs/errors.ts';
import { JobStore } from '../../src/jobs/job-store.ts';
import type { JobEvent } from '../../src/jobs/types.ts';
import type { TestKinds } from './fixtures/test-kinds.ts';
import {
  createHarness,
  FAST_TIMING,
  OWNER_SCRIPT,
  type OwnerSpec,
  type QueueHarness,
  type TestQueue,
  until,
} from './harness.ts';

type Event = JobEvent<TestKinds>;

function record(queue: TestQueue): Event[] {
  const events: Event[] = [];
  queue.subscribe((event) => events.push(event));
  return events;
}

function typesOf(events: Event[], id: string): string[] {
  return events
    .filter((event) => event.job.id === id && event.type !== 'progress')
    .map((event) => event.type);
}

interface Run {
  pid: number;
  start: number;
  end?: number;
  completed: boolean;
}

/** The runs a test.mark job's marker file records, by start time. */
function runsIn(marker: string): Run[] {
  if (!existsSync(marker)) return [];
  const runs: Run[] = [];
  for (const line of readFileSync(marker, 'utf8').trim().split('\n')) {
    const [what, pid, at] = line.split(' ');
    if (what === 'start') runs.push({ pid: Number(pid), start: Number(at), completed: false });
    else {
      const run = runs.findLast((r) => r.pid === Number(pid) && r.end === undefined)!;
      run.end = Number(at);
      run.completed = what === 'end';
    }
  }
  return runs.sort((a, b) => a.start - b.start);
}

/** Never two runs at once, every run ended, and exactly one completed. */
function expectRunOnce(marker: string): Run[] {
  const runs = runsIn(marker);
  expect(
    runs.every((run) => run.end !== undefined),
    JSON.stringify(runs),
  ).toBe(true);
  for (let i = 1; i < runs.length; i++)
    expect(runs[i].start, `run ${i} started while run ${i - 1} still ran`).toBeGreaterThanOrEqual(
      runs[i - 1].end!,
    );
  expect(runs.filter((run) => run.completed)).toHaveLength(1);
  return runs;
}

const alice = { userId: 'alice' };
const bob = { userId: 'bob' };
const admin = { userId: 'root', isAdmin: true };

export function defineQueueSuite(backend: 'embedded' | 'bullmq'): void {
  describe(`${backend} queue: jobs, events, order`, () => {
    let harness: QueueHarness;
    let queue: TestQueue;
    let events: Event[];

    beforeAll(async () => {
      harness = createHarness(backend);
      queue = await harness.open();
      events = record(queue);
    });
    afterAll(async () => {
      await harness.dispose();
    });

    it('runs a job in the worker process and reports queued, started, progress, completed', async () => {
      const job = await queue.submit({ kind: 'noop', payload: { durationMs: 150, steps: 3 }, actor: alice });
      expect(job.status).toBe('queued');
      const done = await queue.waitFor(job.id, { timeoutMs: 10_000 });
      expect(done.status).toBe('completed');
      if (done.kind !== 'noop') throw new Error('narrowing');
      // Tensor work never runs in the bot's process.
      expect(done.result?.pid).not.toBe(process.pid);
      expect(queue.workerPids()).toContain(done.result?.pid);
      expect(done.attempt).toBe(1);
      await until('the completed event', () => typesOf(events, job.id).includes('completed') || undefined);
      expect(typesOf(events, job.id)).toEqual(['queued', 'started', 'completed']);
      const fractions = events
        .filter((event) => event.job.id === job.id && event.type === 'progress')
        .map((event) => event.job.progress!.fraction);
      expect(fractions.length).toBeGreaterThan(0);
      expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
      expect(fractions.at(-1)).toBe(1);
      // The record outlives the run: it is read back from the store.
      expect((await queue.get(job.id))?.status).toBe('completed');
    });

    it('gives positions and ETAs that follow the queue order', async () => {
      const blocker = await queue.submit({
        kind: 'test.sleep',
        payload: { ms: 1_200, steps: 4 },
        actor: alice,
      });
      await until('the blocker to start', async () =>
        (await queue.get(blocker.id))?.status === 'running' ? true : undefined,
      );
      const waiting: Array<{ id: string }> = [];
      for (let i = 0; i < 3; i++) {
        waiting.push(await queue.submit({ kind: 'test.sleep', payload: { ms: 100 }, actor: bob }));
      }
      const infos = await Promise.all(waiting.map((job) => queue.get(job.id)));
      expect(infos.map((info) => info?.position)).toEqual([1, 2, 3]);
      const etas = infos.map((info) => info!.etaSeconds!);
      expect(etas[0]).toBeGreaterThan(0);
      expect(etas[1]).toBeGreaterThanOrEqual(etas[0]);
      expect(etas[2]).toBeGreaterThan(etas[0]);
      const listed = await queue.list({ status: ['queued'], userId: 'bob' });
      expect(listed.map((job) => job.id).sort()).toEqual(waiting.map((job) => job.id).sort());
      await queue.waitFor(blocker.id, { timeoutMs: 10_000 });
      await until('positions to move up', async () => {
        const last = await queue.get(waiting[2].id);
        return last?.status !== 'queued' || (last.position ?? 99) < 3 ? true : undefined;
      });
      for (const job of waiting)
        expect((await queue.waitFor(job.id, { timeoutMs: 10_000 })).status).toBe('completed');
    });

    it('runs short jobs while a fine-tune-lane job is running', async () => {
      const long = await queue.submit({ kind: 'test.long', payload: { ms: 3_000, steps: 6 }, actor: alice });
      await until('the long job to start', async () =>
        (await queue.get(long.id))?.status === 'running' ? true : undefined,
      );
      const short = await queue.submit({ kind: 'noop', payload: {}, actor: bob });
      const done = await queue.waitFor(short.id, { timeoutMs: 10_000 });
      expect(done.status).toBe('completed');
      expect((await queue.get(long.id))?.status).toBe('running');
      expect((await queue.waitFor(long.id, { timeoutMs: 10_000 })).status).toBe('completed');
    });

    it('starts the higher-priority job first', async () => {
      const blocker = await queue.submit({ kind: 'test.sleep', payload: { ms: 600 }, actor: alice });
      await until('the blocker to start', async () =>
        (await queue.get(blocker.id))?.status === 'running' ? true : undefined,
      );
      const low = await queue.submit({ kind: 'test.sleep', payload: { ms: 10 }, actor: alice, priority: 50 });
      const high = await queue.submit({ kind: 'test.sleep', payload: { ms: 10 }, actor: bob, priority: 1 });
      expect((await queue.get(high.id))?.position).toBe(1);
      const [lowDone, highDone] = await Promise.all(
        [low, high].map((job) => queue.waitFor(job.id, { timeoutMs: 10_000 })),
      );
      expect(highDone.startedAt!).toBeLessThan(lowDone.startedAt!);
    });

    it('batches queued generate jobs that share a checkpoint and psi', async () => {
      const blocker = await queue.submit({ kind: 'test.sleep', payload: { ms: 800 }, actor: alice });
      await until('the blocker to start', async () =>
        (await queue.get(blocker.id))?.status === 'running' ? true : undefined,
      );
      const same = [];
      for (let seed = 0; seed < 5; seed++) {
        same.push(
          await queue.submit({
            kind: 'generate',
            payload: { checkpoint: 'ffhq', seeds: [seed], psi: 0.7 },
            actor: bob,
          }),
        );
      }
      const other = await queue.submit({
        kind: 'generate',
        payload: { checkpoint: 'ffhq', seeds: [9], psi: 0.5 },
        actor: bob,
      });
      const done = await Promise.all(
        [...same, other].map((job) => queue.waitFor(job.id, { timeoutMs: 10_000 })),
      );
      for (const job of done) expect(job.status).toBe('completed');
      expect(done.slice(0, 5).map((job) => job.batchSize)).toEqual([5, 5, 5, 5, 5]);
      expect(done[5].batchSize).toBeUndefined();
      const first = done[0];
      if (first.kind !== 'generate') throw new Error('narrowing');
      expect(first.result?.imagePaths).toHaveLength(1);
      expect(first.result?.imagePaths[0]).toContain(first.id);
    });

    it('fails an out-of-memory job with a clear message and keeps serving', async () => {
      const pidBefore = queue.workerPids()[0];
      const oom = await queue.submit({ kind: 'test.oom', payload: {}, actor: alice });
      const failed = await queue.waitFor(oom.id, { timeoutMs: 10_000 });
      expect(failed.status).toBe('failed');
      expect(failed.failure?.code).toBe('oom');
      expect(failed.failure?.message).toMatch(/ran out of memory.*try fewer images/);
      const next = await queue.submit({ kind: 'noop', payload: {}, actor: alice });
      const done = await queue.waitFor(next.id, { timeoutMs: 10_000 });
      expect(done.status).toBe('completed');
      if (done.kind !== 'noop') throw new Error('narrowing');
      expect(done.result?.pid).toBe(pidBefore);
    });

    it('reports handler errors: user errors as they are, others as failures', async () => {
      const user = await queue.submit({
        kind: 'test.fail',
        payload: { message: 'that dataset has no faces', user: true },
        actor: alice,
      });
      const bug = await queue.submit({
        kind: 'test.fail',
        payload: { message: 'undefined is not a function' },
        actor: alice,
      });
      const [userDone, bugDone] = await Promise.all(
        [user, bug].map((job) => queue.waitFor(job.id, { timeoutMs: 10_000 })),
      );
      expect(userDone.failure).toEqual({ code: 'invalid', message: 'that dataset has no faces' });
      // An internal error reaches callers as a log reference only.
      expect(bugDone.failure?.code).toBe('error');
      expect(bugDone.failure?.message).toMatch(
        /^an internal error stopped the job \(log reference [0-9a-f]{8}\)$/,
      );
      expect(bugDone.attempt).toBe(1);
    });

    it('fails a kind no worker handles', async () => {
      const job = await queue.submit({
        kind: 'blend',
        payload: { base: 'ffhq', style: 'toon', layer: 32, seeds: [1], psi: 0.7 },
        actor: alice,
      });
      const done = await queue.waitFor(job.id, { timeoutMs: 10_000 });
      expect(done.failure?.code).toBe('unsupported');
    });

    it('stops a job at its time limit and keeps serving', async () => {
      const slow = await queue.submit({
        kind: 'test.sleep',
        payload: { ms: 10_000, steps: 100 },
        actor: alice,
        limits: { timeLimitMs: 400 },
      });
      const done = await queue.waitFor(slow.id, { timeoutMs: 10_000 });
      expect(done.status).toBe('failed');
      expect(done.failure?.code).toBe('timeout');
      expect(done.failure?.message).toMatch(/time limit of 0 s|time limit of \d+ s/);
      const next = await queue.submit({ kind: 'noop', payload: {}, actor: alice });
      expect((await queue.waitFor(next.id, { timeoutMs: 10_000 })).status).toBe('completed');
    });

    it('cancels queued jobs for their owner or an admin, and refuses others', async () => {
      const blocker = await queue.submit({ kind: 'test.sleep', payload: { ms: 800 }, actor: alice });
      await until('the blocker to start', async () =>
        (await queue.get(blocker.id))?.status === 'running' ? true : undefined,
      );
      const mine = await queue.submit({ kind: 'noop', payload: {}, actor: bob });
      const theirs = await queue.submit({ kind: 'noop', payload: {}, actor: bob });
      await expect(queue.cancel(mine.id, alice)).rejects.toBeInstanceOf(NotAllowedError);
      const byOwner = await queue.cancel(mine.id, bob);
      expect(byOwner.status).toBe('cancelled');
      expect(byOwner.failure?.message).toBe('cancelled by its owner');
      const byAdmin = await queue.cancel(theirs.id, admin);
      expect(byAdmin.failure?.message).toBe('cancelled by admin root');
      // Cancelling again is harmless; an unknown id or a finished job is a clear error.
      expect((await queue.cancel(mine.id, bob)).status).toBe('cancelled');
      await expect(queue.cancel('jnosuchjob', bob)).rejects.toBeInstanceOf(JobNotFoundError);
      await queue.waitFor(blocker.id, { timeoutMs: 10_000 });
      await expect(queue.cancel(blocker.id, alice)).rejects.toBeInstanceOf(JobAlreadyFinishedError);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(typesOf(events, mine.id)).toEqual(['queued', 'cancelled']);
      expect((await queue.get(theirs.id))?.status).toBe('cancelled');
    });

    it('cancels a running job through its abort signal and keeps serving', async () => {
      const pidBefore = queue.workerPids()[0];
      const job = await queue.submit({
        kind: 'test.sleep',
        payload: { ms: 10_000, steps: 100 },
        actor: alice,
      });
      await until('it to report progress', async () =>
        (await queue.get(job.id))?.progress ? true : undefined,
      );
      const started = Date.now();
      const cancelled = await queue.cancel(job.id, alice);
      expect(cancelled.status).toBe('cancelled');
      expect(Date.now() - started).toBeLessThan(3_000);
      const next = await queue.submit({ kind: 'noop', payload: {}, actor: alice });
      const done = await queue.waitFor(next.id, { timeoutMs: 10_000 });
      if (done.kind !== 'noop') throw new Error('narrowing');
      expect(done.result?.pid).toBe(pidBefore);
    });
  });

  describe(`${backend} queue: policies and cleanup`, () => {
    let harness: QueueHarness;
    let queue: TestQueue;

    beforeAll(async () => {
      harness = createHarness(backend);
      queue = await harness.open({
        policy: {
          maxQueued: 3,
          maxActivePerUser: 2,
          maxActivePerServer: 2,
          kinds: { noop: { cooldownMs: 60_000 }, 'test.long': { maxActivePerUser: 1 } },
        },
        maintenance: true,
      });
    });
    afterAll(async () => {
      await harness.dispose();
    });

    it('enforces per-user quotas, cooldowns and the global cap; admins skip user limits', async () => {
      await queue.submit({ kind: 'test.sleep', payload: { ms: 1_500 }, actor: alice });
      await queue.submit({ kind: 'test.sleep', payload: { ms: 200 }, actor: alice });
      const active = await queue
        .submit({ kind: 'test.sleep', payload: { ms: 200 }, actor: alice })
        .catch((err) => err);
      expect(active).toBeInstanceOf(QuotaExceededError);
      expect(active.rule).toBe('active');

      await queue.submit({ kind: 'noop', payload: {}, actor: bob });
      const cooldown = await queue.submit({ kind: 'noop', payload: {}, actor: bob }).catch((err) => err);
      expect(cooldown).toBeInstanceOf(QuotaExceededError);
      expect(cooldown.rule).toBe('cooldown');
      expect(cooldown.retryAfterSeconds).toBeGreaterThan(50);

      // On a slow machine nothing may have started yet (3 queued: the cap); carol's first job
      // needs room. Queued or running, it then counts against her kind's limit, which she is
      // told about before a full queue.
      await until('a job to start', async () => {
        const { lanes } = await queue.stats();
        return lanes.short.queued + lanes.long.queued < 3 || undefined;
      });
      await queue.submit({ kind: 'test.long', payload: { ms: 2_000 }, actor: { userId: 'carol' } });
      const perKind = await queue
        .submit({ kind: 'test.long', payload: { ms: 100 }, actor: { userId: 'carol' } })
        .catch((err) => err);
      expect(perKind).toBeInstanceOf(QuotaExceededError);

      // Admins pass user limits until the queue itself is full.
      const full = await (async () => {
        for (let i = 0; i < 10; i++)
          await queue.submit({ kind: 'test.sleep', payload: { ms: 100 }, actor: admin });
      })().catch((err) => err);
      expect(full).toBeInstanceOf(QueueFullError);
      const stats = await queue.stats();
      expect(stats.lanes.short.queued + stats.lanes.long.queued).toBeLessThanOrEqual(3);
    });

    it("holds a server's admins to the server's cap and gives them rights in their server only", async () => {
      await until('the queue to drain', async () => {
        const { lanes } = await queue.stats();
        return lanes.short.queued + lanes.short.running + lanes.long.queued + lanes.long.running === 0
          ? true
          : undefined;
      });
      const adminOfA = { userId: 'adm-a', guildId: 'A', isAdmin: true };
      const adminOfB = { userId: 'adm-b', guildId: 'B', isAdmin: true };
      // The server is the actor's: a caller cannot file a job under another server's cap.
      const first = await queue.submit({
        kind: 'test.sleep',
        payload: { ms: 300 },
        actor: adminOfA,
        meta: { guildId: 'B' },
      });
      expect(first.meta.guildId).toBe('A');
      await queue.submit({ kind: 'test.sleep', payload: { ms: 300 }, actor: adminOfA });
      const capped = await queue.admit('test.sleep', adminOfA).catch((err) => err);
      expect(capped).toBeInstanceOf(QuotaExceededError);
      expect(capped.rule).toBe('server');
      const third = await queue
        .submit({ kind: 'test.sleep', payload: { ms: 300 }, actor: adminOfA })
        .catch((err) => err);
      expect(third.message).toBe('this server already has 2 jobs queued or running (limit 2)');
      await expect(queue.admit('test.sleep', { userId: 'dave', guildId: 'B' })).resolves.toBeUndefined();

      await expect(queue.cancel(first.id, adminOfB)).rejects.toThrow(
        `job ${first.id} belongs to another server`,
      );
      expect((await queue.get(first.id))?.status).not.toBe('cancelled');
      expect((await queue.cancel(first.id, adminOfA)).status).toBe('cancelled');
    });

    it('removes stale artifacts on cleanup, keeping those of unfinished jobs', async () => {
      await until('the queue to drain', async () => {
        const { lanes } = await queue.stats();
        return lanes.short.queued + lanes.short.running + lanes.long.queued + lanes.long.running === 0
          ? true
          : undefined;
      });
      const running = await queue.submit({
        kind: 'test.sleep',
        payload: { ms: 3_000, steps: 30 },
        actor: { userId: 'dave' },
      });
      await until('it to run', async () => ((await queue.get(running.id))?.progress ? true : undefined));
      const longAgo = new Date(Date.now() - 3 * 86_400_000);
      const artifacts = join(harness.dataDir, 'artifacts');
      const stray = join(artifacts, 'jstray');
      mkdirSync(stray, { recursive: true });
      writeFileSync(join(stray, 'grid.png'), 'x');
      for (const dir of [stray, join(artifacts, running.id)]) {
        for (const entry of readdirSync(dir)) utimesSync(join(dir, entry), longAgo, longAgo);
        utimesSync(dir, longAgo, longAgo);
      }
      await queue.runMaintenance();
      expect(existsSync(stray)).toBe(false);
      expect(existsSync(join(artifacts, running.id))).toBe(true);
      await queue.cancel(running.id, admin);
    });
  });

  describe(`${backend} queue: faults in the worker`, () => {
    let harness: QueueHarness;
    let queue: TestQueue;

    beforeAll(async () => {
      harness = createHarness(backend);
      queue = await harness.open();
    });
    beforeEach(async () => {
      // The previous test may have killed the worker: start from a serving one.
      await queue.whenWorkersReady(20_000);
    });
    afterAll(async () => {
      await harness.dispose();
    });

    it('retries a job whose worker was killed (kill -9) in a new worker', async () => {
      const events = record(queue);
      const job = await queue.submit({ kind: 'test.sleep', payload: { ms: 2_000, steps: 10 }, actor: alice });
      await until(
        'two steps done',
        async () => ((await queue.get(job.id))?.progress?.fraction ?? 0) >= 0.2 || undefined,
      );
      const killed = queue.workerPids()[0];
      process.kill(killed, 'SIGKILL');
      const done = await queue.waitFor(job.id, { timeoutMs: 20_000 });
      expect(done.status).toBe('completed');
      expect(done.attempt).toBe(2);
      if (done.kind !== 'test.sleep') throw new Error('narrowing');
      expect(done.result?.pid).not.toBe(killed);
      expect(done.result?.attempt).toBe(2);
      expect(typesOf(events, job.id)).toEqual(['queued', 'started', 'requeued', 'started', 'completed']);
      expect(done.history.map((entry) => entry.event).join('\n')).toMatch(/back in the queue/);
    });

    it('fails a job with the reason once its worker died on every attempt', async () => {
      const job = await queue.submit({
        kind: 'test.sleep',
        payload: { ms: 5_000, steps: 50 },
        actor: alice,
        limits: { maxAttempts: 1 },
      });
      await until('it to run', async () => ((await queue.get(job.id))?.progress ? true : undefined));
      process.kill(queue.workerPids()[0], 'SIGKILL');
      const done = await queue.waitFor(job.id, { timeoutMs: 20_000 });
      expect(done.status).toBe('failed');
      expect(done.failure?.code).toBe('crashed');
      expect(done.failure?.message).toMatch(/worker process died.*1 attempt/);
      // The restarted worker serves the next job.
      await queue.whenWorkersReady(20_000);
      const next = await queue.submit({ kind: 'noop', payload: {}, actor: alice });
      expect((await queue.waitFor(next.id, { timeoutMs: 20_000 })).status).toBe('completed');
    });

    it('restarts a worker whose handler ignores its abort signal, failing that job only', async () => {
      const stuckPid = queue.workerPids()[0];
      const hang = await queue.submit({
        kind: 'test.hang',
        payload: { ms: 60_000 },
        actor: alice,
        limits: { timeLimitMs: 300 },
      });
      const done = await queue.waitFor(hang.id, { timeoutMs: 15_000 });
      expect(done.status).toBe('failed');
      expect(done.failure?.code).toBe('timeout');
      const next = await queue.submit({ kind: 'noop', payload: {}, actor: alice });
      const nextDone = await queue.waitFor(next.id, { timeoutMs: 20_000 });
      if (nextDone.kind !== 'noop') throw new Error('narrowing');
      expect(nextDone.status).toBe('completed');
      expect(nextDone.result?.pid).not.toBe(stuckPid);
    });

    it('ends a job that blocks its worker past the time limit in a known state', async () => {
      const hang = await queue.submit({
        kind: 'test.hang',
        payload: { ms: 3_000, blockEventLoop: true },
        actor: alice,
        limits: { timeLimitMs: 300 },
      });
      const done = await queue.waitFor(hang.id, { timeoutMs: 20_000 });
      expect(done.status).toBe('failed');
      // Embedded: the owner kills the blocked worker at its deadline. BullMQ: the blocked worker
      // cannot renew its lock, so the job is taken back and fails on its next start.
      expect(done.failure?.code).toBe(backend === 'embedded' ? 'timeout' : 'crashed');
      const next = await queue.submit({ kind: 'noop', payload: {}, actor: alice });
      expect((await queue.waitFor(next.id, { timeoutMs: 20_000 })).status).toBe('completed');
    });
  });

  describe(`${backend} queue: restarts of the process that owns it`, () => {
    let harness: QueueHarness;
    let owner: ChildProcess | undefined;

    beforeAll(() => {
      harness = createHarness(backend);
    });
    afterEach(async () => {
      owner?.kill('SIGKILL');
      owner = undefined;
      await harness.closeAll();
    });
    afterAll(async () => {
      await harness.dispose();
    });

    it('resumes the queue after a restart of its owner, without charging an attempt', async () => {
      const first = await harness.open();
      const jobs: Array<{ id: string }> = [];
      // The first runs long enough to be cut off by the restart; it resumes where it was.
      for (const ms of [3_000, 300, 300]) {
        jobs.push(await first.submit({ kind: 'test.sleep', payload: { ms, steps: 10 }, actor: alice }));
      }
      await until('the first job to run', async () =>
        (await first.get(jobs[0].id))?.progress ? true : undefined,
      );
      await first.close();
      // Nobody runs the queue now: the store alone holds the jobs, all waiting again.
      const store = await JobStore.open(harness.config.storeUrl, harness.config.prefix);
      const stored = await Promise.all(jobs.map((job) => store.get(job.id)));
      await store.close();
      expect(stored.map((job) => job?.status)).toEqual(['queued', 'queued', 'queued']);
      const second = await harness.open();
      const done = await Promise.all(jobs.map((job) => second.waitFor(job.id, { timeoutMs: 20_000 })));
      expect(done.map((job) => job.status)).toEqual(['completed', 'completed', 'completed']);
      expect(done.map((job) => job.attempt)).toEqual([1, 1, 1]);
      await second.close();
    });

    it('loses nothing when the process that owns the queue is killed (kill -9)', async () => {
      const spec: OwnerSpec = { config: harness.config, timing: FAST_TIMING, jobs: 4 };
      owner = spawn(process.execPath, ['--import', 'tsx', OWNER_SCRIPT], {
        env: { ...process.env, FACESTYLE_TEST_OWNER: JSON.stringify(spec) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const submitted: string[] = [];
      let ownerWorkers: number[] = [];
      const lines = createInterface({ input: owner.stdout! });
      const running = new Promise<void>((resolve, reject) => {
        owner!.once('exit', (code) => reject(new Error(`the owner process exited early (${code})`)));
        lines.on('line', (line) => {
          const message = JSON.parse(line);
          if (message.submitted) submitted.push(message.submitted);
          if (message.workers) ownerWorkers = message.workers;
          if (message.event === 'progress' && submitted.length === spec.jobs && ownerWorkers.length)
            resolve();
        });
      });
      await running;
      owner.kill('SIGKILL');
      // Its worker notices the dead parent and quits too; nothing of the old owner is left.
      for (const pid of ownerWorkers) {
        await until(`worker ${pid} to exit`, () => {
          try {
            process.kill(pid, 0);
            return undefined;
          } catch {
            return true;
          }
        });
      }
      const queue = await harness.open();
      const done = await Promise.all(submitted.map((id) => queue.waitFor(id, { timeoutMs: 30_000 })));
      expect(done.map((job) => job.status)).toEqual(submitted.map(() => 'completed'));
      await queue.close();
    });

    if (backend === 'embedded') {
      it('never runs a job twice when a new owner starts while the old worker still runs it', async () => {
        const marker = join(harness.dataDir, 'orphan.marker');
        // The job keeps its worker busy (no event loop) well past the owner's death.
        const spec: OwnerSpec = {
          config: harness.config,
          timing: FAST_TIMING,
          jobs: 1,
          job: { kind: 'test.mark', payload: { ms: 200, blockMs: 3_000, marker } },
        };
        owner = spawn(process.execPath, ['--import', 'tsx', OWNER_SCRIPT], {
          env: { ...process.env, FACESTYLE_TEST_OWNER: JSON.stringify(spec) },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let id = '';
        createInterface({ input: owner.stdout! }).on('line', (line) => {
          const message = JSON.parse(line);
          if (message.submitted) id = message.submitted;
        });
        await until(
          'the job to start in the old worker',
          () => (id && runsIn(marker).length === 1) || undefined,
          30_000,
        );
        const gone = new Promise((resolve) => owner!.once('exit', resolve));
        owner.kill('SIGKILL');
        await gone;
        // At once, without waiting for the old worker: it still runs the job. (Its grace before
        // a kill outlasts the block here, so the old worker ends the job itself and says so.)
        const queue = await harness.open({ timing: { hardKillGraceMs: 5_000 } });
        const done = await queue.waitFor(id, { timeoutMs: 30_000 });
        expect(done.status).toBe('completed');
        const runs = expectRunOnce(marker);
        expect(runs.at(-1)?.pid).toBe(queue.workerPids()[0]);
        await queue.close();
      });
    } else {
      it('never runs a job twice when a second worker starts while the first runs it', async () => {
        const first = await harness.open();
        const markers = Array.from({ length: 5 }, (_, i) =>
          join(harness.dataDir, `second-worker-${i}.marker`),
        );
        const long = await first.submit({
          kind: 'test.mark',
          payload: { ms: 2_500, marker: markers[0] },
          actor: alice,
        });
        await until('the first worker to run it', () => runsIn(markers[0]).length === 1 || undefined);
        // A second process with its own worker joins the same queue while the job runs.
        const second = await harness.open();
        const more = [];
        for (const marker of markers.slice(1))
          more.push(await second.submit({ kind: 'test.mark', payload: { ms: 300, marker }, actor: bob }));
        const done = await Promise.all(
          [long, ...more].map((job) => second.waitFor(job.id, { timeoutMs: 30_000 })),
        );
        expect(done.map((job) => job.status)).toEqual(done.map(() => 'completed'));
        for (const marker of markers) expect(expectRunOnce(marker)).toHaveLength(1);
        expect(runsIn(markers[0])[0].pid).toBe(first.workerPids()[0]);
        await Promise.all([first.close(), second.close()]);
      });
    }
  });
}
