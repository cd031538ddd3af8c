// kill -9 of the worker in the middle of a real fine-tune (the tiny parity model, a few images):
// the job is retried, the trainer resumes from the run's last snapshot instead of starting over,
// and the result lists the same snapshots an uninterrupted run would have.
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobConfigFromEnv } from '../../src/jobs/config.ts';
import { createJobQueue, type LocalJobQueue } from '../../src/jobs/create.ts';
import { readCheckpointInfo } from '../../src/model/checkpoint/info.ts';
import { snapshotPath } from '../../src/model/train/snapshot.ts';
import { DEFAULT_FIXTURE } from '../support/fixture.ts';
import { FAST_TIMING, until } from './harness.ts';

let dataDir: string;
let queue: LocalJobQueue;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'facestyle-finetune-kill-'));
  await mkdir(join(dataDir, 'models'), { recursive: true });
  await copyFile(join(DEFAULT_FIXTURE, 'model.safetensors'), join(dataDir, 'models', 'base.safetensors'));
  const config = jobConfigFromEnv({ FACESTYLE_DATA_DIR: dataDir, FACESTYLE_BACKEND: 'wasm' });
  queue = await createJobQueue({
    config,
    timing: FAST_TIMING,
    maintenance: false,
    workerEnv: { ...process.env, FACESTYLE_BACKEND: 'wasm' },
  });
  await queue.whenWorkersReady(60_000);
});

afterAll(async () => {
  await queue?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('a fine-tune whose worker is killed mid-epoch', () => {
  it('resumes from the last snapshot and ends with the same snapshots as an uninterrupted run', async () => {
    const datasetDir = join(dataDir, 'faces');
    await mkdir(datasetDir);
    for (let i = 0; i < 8; i++) {
      await sharp({
        create: { width: 32, height: 32, channels: 3, background: { r: 30 * i, g: 90, b: 160 } },
      })
        .png()
        .toFile(join(datasetDir, `${i}.png`));
    }
    const runDir = join(dataDir, 'runs', 'killed');
    const job = await queue.submit({
      kind: 'finetune',
      payload: { datasetDir, base: 'base', epochs: 3, snapshotEvery: 1, runDir, batchSize: 4 },
      actor: { userId: 'admin' },
    });
    // The trainer resumes from the newest snapshot in its run folder: wait for epoch 1's, then
    // kill the worker while epoch 2 is under way.
    const firstSnapshotPath = snapshotPath(runDir, 1);
    const firstSnapshot = await until(
      'the first snapshot',
      async () => stat(firstSnapshotPath).catch(() => undefined),
      120_000,
    );
    await until(
      'epoch 2 to be under way',
      async () => (((await queue.get(job.id))?.progress?.fraction ?? 0) > 1 / 3 ? true : undefined),
      60_000,
    );
    const [worker] = queue.workerPids();
    process.kill(worker, 'SIGKILL');
    // Killed before epoch 2 ended: no second snapshot yet.
    await expect(stat(snapshotPath(runDir, 2))).rejects.toThrow();

    const done = await queue.waitFor(job.id, { timeoutMs: 180_000 });
    expect(done.status, done.failure?.message).toBe('completed');
    expect(done.attempt).toBe(2);
    expect(done.history.map((entry) => entry.event).join('\n')).toMatch(
      /worker process died \(killed by SIGKILL\)/,
    );
    if (done.kind !== 'finetune' || !done.result) throw new Error('no result');
    expect(done.result.snapshots.map((snapshot) => snapshot.epoch)).toEqual([1, 2, 3]);
    // Resumed, not restarted: the epoch-1 snapshot is the one the killed attempt wrote.
    expect((await stat(firstSnapshotPath)).mtimeMs).toBe(firstSnapshot.mtimeMs);
    const last = await readCheckpointInfo(done.result.snapshots[2].checkpointPath);
    expect(last.meta.epoch).toBe(3);
    expect(queue.workerPids()).not.toContain(worker);
  });
});
