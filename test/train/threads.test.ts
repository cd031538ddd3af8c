// Round threads (wasm): a minibatch's rounds computed side by side on two threads train the same
// networks as the rounds computed one after another on one, and a thread's failure reaches the
// caller with its reason.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { loadCheckpoint } from '../../src/model/checkpoint/io.ts';
import { TrainingSet } from '../../src/model/train/data.ts';
import { defaultHyperparameters } from '../../src/model/train/hyperparameters.ts';
import { RoundThreads, readParams } from '../../src/model/train/round-threads.ts';
import { type FinetuneOptions, finetune } from '../../src/model/train/trainer.ts';
import { TINY_CONFIG as CONFIG, TINY_RES as RES, relativeError, tinyNetworks, toHost } from './support.ts';

let workDir: string;

function images(count: number): TrainingSet {
  const px = new Uint8Array(count * RES * RES * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 2_654_435_761) >>> 24;
  return new TrainingSet(px, RES);
}

function options(name: string, overrides: Partial<FinetuneOptions>): FinetuneOptions {
  return {
    outDir: join(workDir, name),
    name,
    config: CONFIG,
    networks: tinyNetworks(5),
    data: images(8),
    // 16 items an epoch in minibatches of 8: 4 steps, R1 and path length both at step 0.
    epochs: 2,
    snapshotEvery: 2,
    previewSeeds: [],
    ...overrides,
  };
}

beforeAll(async () => {
  await initBackend('wasm');
  workDir = await mkdtemp(join(tmpdir(), 'facestyle-threads-'));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('round threads (wasm)', () => {
  it('train the same networks on two threads as the same rounds on one', async () => {
    const hyper = { batchSize: 8, plWeight: 2, plInterval: 4, r1Gamma: 1, augment: { fixedP: 0.5 } } as const;
    const one = await finetune(options('one', { hyper: { ...hyper, batchGpu: 4 } }));
    const two = await finetune(options('two', { hyper, threads: 2 }));
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    const a = await loadCheckpoint(one.snapshots.at(-1)!.path);
    const b = await loadCheckpoint(two.snapshots.at(-1)!.path);
    const start = tinyNetworks(5);
    let moved = 0;
    for (const net of ['G', 'D', 'G_ema'] as const) {
      for (const [name, t] of a[net]!) {
        const expected = await toHost(t);
        expect(relativeError(await toHost(b[net]!.get(name)!), expected), `${net} ${name}`).toBeLessThan(
          1e-4,
        );
        const initial = (net === 'D' ? start.D : start.G).get(name)!;
        if (relativeError(await toHost(initial), expected) > 1e-3) moved++;
      }
    }
    // The comparison means something only if training changed the networks.
    expect(moved).toBeGreaterThan(20);
    expect(b.meta.losses).toEqual(expect.objectContaining({ G: expect.any(Number), D: expect.any(Number) }));
    for (const k of ['G', 'D', 'r1', 'pl']) expect(b.meta.losses![k]).toBeCloseTo(a.meta.losses![k], 4);
  });

  it('split the default minibatch too', async () => {
    const result = await finetune(options('default-batch', { threads: 2, epochs: 1, snapshotEvery: 1 }));
    expect(result.threads).toBe(2);
    const info = await loadCheckpoint(result.snapshots.at(-1)!.path);
    const hyper = (info.meta.extra as { hyperparameters: { batchSize: number; batchGpu: number } })
      .hyperparameters;
    expect(hyper.batchGpu * 2).toBe(hyper.batchSize);
  });

  it('stay one thread when the minibatch does not split into rounds of whole groups', async () => {
    const result = await finetune(
      options('odd', { hyper: { batchSize: 4 }, threads: 2, epochs: 1, snapshotEvery: 1 }),
    );
    expect(result.threads).toBe(1);
  });

  it('pass a thread failure on with its reason', async () => {
    const { G, D } = tinyNetworks(5);
    const start = RoundThreads.start(1, {
      gCfg: CONFIG.G,
      dCfg: CONFIG.D!,
      hyper: defaultHyperparameters(RES, 16),
      G: await readParams(G),
      D: await readParams(D),
      pixels: new Uint8Array(100),
      resolution: RES,
      dataId: 'broken',
    });
    await expect(start).rejects.toThrow(
      /a training round thread failed: training set: 100 bytes are not whole 8x8 RGB images/,
    );
  });
});
