// The training loop on webgpu (lavapipe in CI) with the fused kernels: it still learns the tiny
// solid-colour set, as the wasm loop in trainer.test.ts does. Skips without a WebGPU adapter unless
// CI_REQUIRE_WEBGPU is set.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, initBackend } from '../../src/model/backend.ts';
import { loadCheckpoint } from '../../src/model/checkpoint/io.ts';
import { TrainingSet } from '../../src/model/train/data.ts';
import { finetune } from '../../src/model/train/trainer.ts';
import { TINY_CONFIG as CONFIG, meanColour, TINY_RES as RES, tinyNetworks } from './support.ts';

let workDir: string;
let available = true;

beforeAll(async () => {
  try {
    await initBackend('webgpu');
  } catch (err) {
    if (process.env.CI_REQUIRE_WEBGPU || !(err instanceof BackendError)) throw err;
    console.warn(`skipped: no WebGPU adapter (set CI_REQUIRE_WEBGPU=1 to make this fail): ${err.message}`);
    available = false;
  }
  workDir = await mkdtemp(join(tmpdir(), 'facestyle-train-webgpu-'));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('training loop (webgpu)', () => {
  it('moves the generator towards the data', async (ctx) => {
    if (!available) ctx.skip('no WebGPU adapter on this machine');
    const target = [0.73, -0.69, -0.76]; // about (220, 40, 30) in [-1, 1]
    const networks = {
      ...tinyNetworks(5),
    };
    const before = await meanColour(networks.G);
    const px = new Uint8Array(8 * RES * RES * 3);
    for (let i = 0; i < px.length; i++) px[i] = Math.min(255, [220, 40, 30][i % 3] + ((i * 7) % 11));
    const result = await finetune({
      outDir: join(workDir, 'learns'),
      name: 'learns',
      config: CONFIG,
      networks,
      data: new TrainingSet(px, RES),
      epochs: 12,
      snapshotEvery: 12,
      hyper: { batchSize: 4, glr: 0.01, dlr: 0.01, augment: 'off' },
      previewSeeds: [],
    });
    const ckpt = await loadCheckpoint(result.snapshots.at(-1)!.path, { networks: ['G'] });
    const after = await meanColour(ckpt.G!);
    const distance = (c: number[]) => Math.hypot(...c.map((v, i) => v - target[i]));
    expect(distance(after)).toBeLessThan(0.6 * distance(before));
  }, 600_000);
});
