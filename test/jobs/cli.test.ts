// `facestyle jobs` and `facestyle worker` run for real through bin/facestyle.js (which also proves
// that a worker forked from the CLI starts through tsx).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createJobQueue } from '../../src/jobs/create.ts';
import { TEST_KIND_SPECS, type TestKinds } from './fixtures/test-kinds.ts';
import {
  assertRedisUp,
  createHarness,
  FAST_TIMING,
  type QueueHarness,
  REDIS_URL,
  skipServices,
  TEST_HANDLERS,
  until,
} from './harness.ts';

const BIN = fileURLToPath(new URL('../../bin/facestyle.js', import.meta.url));
const run = promisify(execFile);

function cliEnv(harness: QueueHarness, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    FACESTYLE_DATA_DIR: harness.dataDir,
    FACESTYLE_QUEUE_PREFIX: harness.config.prefix,
    FACESTYLE_QUEUE_URL: '',
    ...extra,
  };
}

describe('facestyle jobs (embedded queue)', () => {
  const harness = createHarness('embedded');
  afterAll(() => harness.dispose());

  it('lists, inspects and cancels the jobs of a running bot', async () => {
    const queue = await harness.open();
    const actor = { userId: 'u1' };
    const done = await queue.submit({ kind: 'noop', payload: {}, actor });
    await queue.waitFor(done.id, { timeoutMs: 10_000 });
    const blocker = await queue.submit({
      kind: 'test.sleep',
      payload: { ms: 120_000, steps: 1_200 },
      actor,
      limits: { timeLimitMs: 300_000 },
    });
    const waiting = await queue.submit({ kind: 'noop', payload: {}, actor: { userId: 'u2' } });
    await until('the blocker to run', async () =>
      (await queue.get(blocker.id))?.progress ? true : undefined,
    );

    const list = await run(process.execPath, [BIN, 'jobs', 'list', '--json'], { env: cliEnv(harness) });
    const listed = new Map(
      list.stdout
        .trim()
        .split('\n')
        .map((line) => [JSON.parse(line).id, JSON.parse(line)]),
    );
    expect(listed.get(done.id)).toMatchObject({ status: 'completed', kind: 'noop' });
    expect(listed.get(blocker.id)).toMatchObject({ status: 'running', position: null });
    expect(listed.get(waiting.id)).toMatchObject({ status: 'queued', position: 1, userId: 'u2' });

    const cancel = await run(process.execPath, [BIN, 'jobs', 'cancel', waiting.id, '--by', 'ops'], {
      env: cliEnv(harness),
    });
    expect(cancel.stdout).toBe(`job ${waiting.id} cancelled\n`);
    const cancelled = await queue.get(waiting.id);
    expect(cancelled?.failure?.message).toBe('cancelled by admin ops');

    const inspect = await run(process.execPath, [BIN, 'jobs', 'inspect', blocker.id], {
      env: cliEnv(harness),
    });
    expect(inspect.stdout).toMatch(new RegExp(`job ${blocker.id}: test.sleep, running \\d+%`));
    expect(inspect.stdout).toMatch(/attempt 1 started on/);

    const missing = await run(process.execPath, [BIN, 'jobs', 'inspect', 'jnothere'], {
      env: cliEnv(harness),
    }).catch((err) => err);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/error: no job with id jnothere/);
    await queue.close();
  });
});

describe.skipIf(skipServices)('facestyle worker (BullMQ queue)', () => {
  const harness = createHarness('bullmq');
  let worker: ChildProcess | undefined;
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await harness.dispose();
  });

  it('serves the queue from a separate process until SIGTERM', async () => {
    await assertRedisUp(REDIS_URL);
    worker = spawn(process.execPath, [BIN, 'worker', '--lanes', 'short'], {
      env: cliEnv(harness, { FACESTYLE_QUEUE_URL: REDIS_URL, FACESTYLE_WORKER_HANDLERS: TEST_HANDLERS }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    worker.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    const queue = await createJobQueue<TestKinds>({
      config: { ...harness.config, localWorkers: 0 },
      kinds: TEST_KIND_SPECS,
      timing: FAST_TIMING,
      maintenance: false,
    });
    try {
      const jobs = await Promise.all(
        [1, 2, 3].map((i) =>
          queue.submit({ kind: 'noop', payload: { durationMs: 10 }, actor: { userId: `u${i}` } }),
        ),
      );
      const done = await Promise.all(jobs.map((job) => queue.waitFor(job.id, { timeoutMs: 60_000 })));
      const pids = new Set(done.map((job) => (job.kind === 'noop' ? job.result?.pid : undefined)));
      expect(pids.size).toBe(1);
      // The job ran in the process the CLI forked, not in the CLI itself.
      expect([...pids][0]).not.toBe(worker.pid);
      expect(stderr).toMatch(/"kinds":\[[^\]]*"test.sleep"/);
    } finally {
      await queue.close();
    }
    const exited = new Promise<number | null>((resolve) => worker!.once('exit', (code) => resolve(code)));
    worker.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
