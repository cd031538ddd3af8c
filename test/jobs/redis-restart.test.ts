// Redis restarted under a running BullMQ queue, for real: a private redis-server (its own port,
// no persistence, so the restart loses every key) is killed with SIGKILL while jobs are queued
// and one runs, then started again. The queue must refuse new jobs clearly while Redis is down
// and finish every job it had accepted, re-queueing them from its store.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobQueue } from '../../src/jobs/create.ts';
import { QueueUnavailableError } from '../../src/jobs/errors.ts';
import { TEST_KIND_SPECS, type TestKinds } from './fixtures/test-kinds.ts';
import {
  createHarness,
  FAST_TIMING,
  OPEN_POLICY,
  type QueueHarness,
  skipServices,
  until,
} from './harness.ts';

const PORT = 6390 + (process.pid % 50);
const URL = `redis://127.0.0.1:${PORT}`;

/** No persistence: a restart loses every key. With `aofDir`: every write synced to an append-only file there. */
function startRedis(aofDir?: string): ChildProcess {
  const persistence = aofDir
    ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', aofDir]
    : ['--appendonly', 'no'];
  return spawn('redis-server', ['--port', String(PORT), '--save', '', ...persistence, '--daemonize', 'no'], {
    stdio: 'ignore',
  });
}

function runsIn(marker: string): string[] {
  return existsSync(marker) ? readFileSync(marker, 'utf8').trim().split('\n') : [];
}

async function redisAnswers(): Promise<boolean> {
  const client = new Redis({
    port: PORT,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

describe.skipIf(skipServices)('BullMQ queue through a Redis restart', () => {
  let redis: ChildProcess | undefined;
  let harness: QueueHarness;

  beforeAll(async () => {
    redis = startRedis();
    await until('the private redis-server', async () => ((await redisAnswers()) ? true : undefined), 10_000);
    harness = createHarness('bullmq');
  });
  afterAll(async () => {
    await harness.closeAll();
    redis?.kill('SIGKILL');
    await harness.dispose().catch(() => {});
  });

  it('refuses new jobs while Redis is down and finishes every accepted job after it returns', async () => {
    const queue = await createJobQueue<TestKinds>({
      config: { ...harness.config, queueUrl: URL, policy: OPEN_POLICY },
      kinds: TEST_KIND_SPECS,
      timing: FAST_TIMING,
      maintenance: false,
    });
    try {
      await queue.whenWorkersReady(30_000);
      const accepted: Array<{ id: string }> = [];
      for (let i = 0; i < 5; i++) {
        accepted.push(
          await queue.submit({
            kind: 'test.sleep',
            payload: { ms: 600, steps: 3 },
            actor: { userId: `u${i}` },
          }),
        );
      }
      await until('a job to run', async () =>
        (await queue.get(accepted[0].id))?.progress ? true : undefined,
      );

      redis!.kill('SIGKILL');
      await until('Redis to be gone', async () => ((await redisAnswers()) ? undefined : true));
      const refused = await queue
        .submit({ kind: 'test.sleep', payload: { ms: 10 }, actor: { userId: 'late' } })
        .catch((err) => err);
      expect(refused).toBeInstanceOf(QueueUnavailableError);
      expect(refused.message).toMatch(/job queue is unavailable/);

      redis = startRedis();
      await until('Redis to be back', async () => ((await redisAnswers()) ? true : undefined), 10_000);
      const done = await Promise.all(accepted.map((job) => queue.waitFor(job.id, { timeoutMs: 45_000 })));
      expect(done.map((job) => job.status)).toEqual(accepted.map(() => 'completed'));
      // The refused job never ran: it is nowhere, not even as a ghost in the restarted Redis.
      expect(await queue.list({ userId: 'late' })).toEqual([]);
      const after = await queue.submit({ kind: 'noop', payload: {}, actor: { userId: 'after' } });
      expect((await queue.waitFor(after.id, { timeoutMs: 20_000 })).status).toBe('completed');
    } finally {
      await queue.close();
    }
  });

  it('with a persistent Redis, runs every job once through a restart mid-job and stores each outcome', async () => {
    redis?.kill('SIGKILL');
    await until('the first Redis to be gone', async () => ((await redisAnswers()) ? undefined : true));
    const aofDir = mkdtempSync(join(tmpdir(), 'facestyle-redis-aof-'));
    redis = startRedis(aofDir);
    await until(
      'the persistent redis-server',
      async () => ((await redisAnswers()) ? true : undefined),
      10_000,
    );
    const queue = await createJobQueue<TestKinds>({
      config: {
        ...harness.config,
        queueUrl: URL,
        prefix: `${harness.config.prefix}-aof`,
        policy: OPEN_POLICY,
      },
      kinds: TEST_KIND_SPECS,
      // The lock must outlive the outage (kill, restart, AOF replay): on a loaded 2-core machine that
      // took over FAST_TIMING's 1.5 s, the lock key expired and the stalled check re-ran the job.
      timing: { ...FAST_TIMING, lockDurationMs: 15_000, stalledIntervalMs: 2_000 },
      maintenance: false,
    });
    try {
      await queue.whenWorkersReady(30_000);
      const markers = [0, 1, 2].map((i) => join(aofDir, `job-${i}.marker`));
      const jobs = [];
      for (const marker of markers)
        jobs.push(
          await queue.submit({ kind: 'test.mark', payload: { ms: 700, marker }, actor: { userId: 'u' } }),
        );
      await until('the first job to run', () => runsIn(markers[0]).length === 1 || undefined);
      // Down while the first job runs and finishes: its outcome waits for Redis, its lock held.
      redis!.kill('SIGKILL');
      await until('Redis to be gone', async () => ((await redisAnswers()) ? undefined : true));
      await new Promise((resolve) => setTimeout(resolve, 700));
      redis = startRedis(aofDir);
      await until('Redis to be back', async () => ((await redisAnswers()) ? true : undefined), 10_000);
      const done = await Promise.all(jobs.map((job) => queue.waitFor(job.id, { timeoutMs: 45_000 })));
      expect(done.map((job) => job.status)).toEqual(['completed', 'completed', 'completed']);
      for (const marker of markers)
        expect(runsIn(marker).filter((line) => line.startsWith('start'))).toHaveLength(1);
    } finally {
      await queue.close();
      rmSync(aofDir, { recursive: true, force: true });
    }
  });
});
