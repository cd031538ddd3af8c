// The training loop on tiny models (wasm): it learns, ADA reacts, snapshots are self-describing,
// and a run killed mid-way resumes to the same snapshots.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { initBackend } from '../../src/model/backend.ts';
import { loadCheckpoint, readCheckpointInfo } from '../../src/model/checkpoint/io.ts';
import { tf } from '../../src/model/tf.ts';
import { epochOrder, streamItems, TrainingSet } from '../../src/model/train/data.ts';
import { trainingStateOf } from '../../src/model/train/snapshot.ts';
import {
  defaultHyperparameters,
  type FinetuneOptions,
  finetune,
  type TrainProgress,
} from '../../src/model/train/trainer.ts';
import { TINY_CONFIG as CONFIG, meanColour, TINY_RES as RES, tinyNetworks } from './support.ts';

let workDir: string;

/** `count` images filled with one colour plus a little per-image variation. */
function solidImages(count: number, rgb: [number, number, number]): TrainingSet {
  const px = new Uint8Array(count * RES * RES * 3);
  for (let i = 0; i < px.length; i++) px[i] = Math.min(255, rgb[i % 3] + ((i * 7) % 11));
  return new TrainingSet(px, RES);
}

function options(name: string, data: TrainingSet, overrides: Partial<FinetuneOptions> = {}): FinetuneOptions {
  return {
    outDir: join(workDir, name),
    name,
    config: CONFIG,
    networks: overrides.networks ?? tinyNetworks(1),
    data,
    epochs: 4,
    snapshotEvery: 1,
    hyper: { batchSize: 4 },
    previewSeeds: [0, 1],
    ...overrides,
  };
}

beforeAll(async () => {
  await initBackend('wasm');
  workDir = await mkdtemp(join(tmpdir(), 'facestyle-train-'));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('training data', () => {
  it('decodes a folder to the model resolution and serves mirrored items', async () => {
    const dir = join(workDir, 'images');
    await rm(dir, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true }));
    // A 16x12 image, left half red, right half blue: cover-cropped to 8x8 it keeps both halves.
    const raw = Buffer.alloc(16 * 12 * 3);
    for (let y = 0; y < 12; y++)
      for (let x = 0; x < 16; x++) raw.set(x < 8 ? [255, 0, 0] : [0, 0, 255], (y * 16 + x) * 3);
    await sharp(raw, { raw: { width: 16, height: 12, channels: 3 } })
      .png()
      .toFile(join(dir, 'a.png'));
    await sharp(raw, { raw: { width: 16, height: 12, channels: 3 } })
      .jpeg()
      .toFile(join(dir, 'b.jpg'));
    await writeFile(join(dir, 'notes.txt'), 'not an image');
    const set = await TrainingSet.fromFolder(dir, RES);
    expect(set.count).toBe(2);
    expect(set.itemsPerEpoch(true)).toBe(4);
    const batch = await set.batch([0, 2]).array();
    expect(batch[0][3][0]).toEqual([1, -1, -1]); // original: red on the left
    expect(batch[1][3][0]).toEqual([-1, -1, 1]); // mirrored: blue on the left
    await expect(TrainingSet.fromFolder(join(workDir, 'missing'), RES)).rejects.toThrow(UserError);
  });

  it('streams one permutation per epoch, and any split of the stream is the same stream', () => {
    const order = Array.from(epochOrder(10, 3, 0)).sort((a, b) => a - b);
    expect(order).toEqual([...Array(10).keys()]);
    expect(Array.from(epochOrder(10, 3, 1))).not.toEqual(Array.from(epochOrder(10, 3, 0)));
    const whole = streamItems(10, 3, 0, 30);
    for (const cut of [1, 7, 10, 23]) {
      expect([...streamItems(10, 3, 0, cut), ...streamItems(10, 3, cut, 30 - cut)]).toEqual(whole);
    }
  });
});

describe('training loop (wasm)', () => {
  it('moves the generator towards the data', async () => {
    const target = [0.73, -0.69, -0.76]; // about (220, 40, 30) in [-1, 1]
    const networks = tinyNetworks(5);
    const before = await meanColour(networks.G);
    const result = await finetune(
      options('learns', solidImages(8, [220, 40, 30]), {
        networks,
        epochs: 12,
        snapshotEvery: 12,
        hyper: { batchSize: 4, glr: 0.01, dlr: 0.01, augment: 'off' },
      }),
    );
    const ckpt = await loadCheckpoint(result.snapshots.at(-1)!.path, { networks: ['G'] });
    const after = await meanColour(ckpt.G!);
    const distance = (c: number[]) => Math.hypot(...c.map((v, i) => v - target[i]));
    expect(distance(after)).toBeLessThan(0.6 * distance(before));
  });

  it('raises the augmentation probability when D over-fits a 16-image set', async () => {
    const events: TrainProgress[] = [];
    const noise = new TrainingSet(
      Uint8Array.from({ length: 16 * RES * RES * 3 }, (_, i) => (i * 2_654_435_761) >>> 24),
      RES,
    );
    const result = await finetune(
      options('ada', noise, {
        epochs: 6,
        snapshotEvery: 6,
        hyper: { batchSize: 8, dlr: 0.02, adaKimg: 0.2, adaInterval: 1, mirror: false },
        onProgress: (e) => events.push(e),
      }),
    );
    const ps = events.map((e) => e.augmentP);
    // Each adjustment moves p by 8 images / 200 = 0.04, up while r_t > 0.6.
    expect(Math.max(...ps)).toBeGreaterThan(0.2);
    expect(ps.at(-1)).toBeGreaterThan(0.2);
    expect(events.filter((e) => (e.rt ?? 0) > 0.6).length).toBeGreaterThan(events.length / 2);
    const info = await readCheckpointInfo(result.snapshots.at(-1)!.path);
    expect(info.meta.augmentP).toBeCloseTo(ps.at(-1)!, 10);
  });

  it('writes self-describing snapshots and previews, and freezes the first D blocks', async () => {
    const data = solidImages(4, [30, 200, 90]);
    const networks = tinyNetworks(7);
    const frozenBefore = await networks.D.get('b8.conv0.weight')!.data();
    const trainedBefore = await networks.D.get('b4.conv.weight')!.data();
    const events: TrainProgress[] = [];
    const tensorsBefore = tf.memory().numTensors;
    const result = await finetune(
      options('snapshots', data, {
        networks,
        epochs: 2,
        parent: 'base.safetensors',
        hyper: { batchSize: 4, freezeD: 1 },
        onProgress: (e) => events.push(e),
      }),
    );
    expect(result.snapshots.map((s) => s.epoch)).toEqual([1, 2]);
    // Nothing per step outlives the run (a few cached filter kernels may appear on first use).
    expect(tf.memory().numTensors - tensorsBefore).toBeLessThan(10);
    const info = await readCheckpointInfo(result.snapshots[1].path);
    expect(info.networks.sort()).toEqual(['D', 'G', 'G_ema']);
    expect(info.meta).toMatchObject({
      kind: 'finetune',
      parent: 'base.safetensors',
      datasetId: data.id,
      epoch: 2,
    });
    expect(info.meta.kimg).toBeCloseTo((2 * 8) / 1000, 10);
    expect(Object.keys(info.meta.losses ?? {})).toEqual(expect.arrayContaining(['G', 'D']));
    expect(trainingStateOf(info.meta, 'x')).toMatchObject({ epoch: 2, imagesSeen: 16, step: 4 });
    const png = await readFile(join(workDir, 'snapshots', 'preview-epoch00002.png'));
    expect((await sharp(png).metadata()).format).toBe('png');
    expect(events.filter((e) => e.snapshot).map((e) => e.epoch)).toEqual([1, 2]);
    expect(events.at(-1)).toMatchObject({ epoch: 2, epochs: 2, step: 4, etaSeconds: 0 });

    const ckpt = await loadCheckpoint(result.snapshots[1].path);
    expect(Array.from(await ckpt.D!.get('b8.conv0.weight')!.data())).toEqual(Array.from(frozenBefore));
    expect(Array.from(await ckpt.D!.get('b4.conv.weight')!.data())).not.toEqual(Array.from(trainedBefore));
  });

  it('stops within one step when cancelled, and resumes to the same snapshots', async () => {
    const data = solidImages(4, [120, 120, 200]);
    const straight = await finetune(options('straight', data, { networks: tinyNetworks(3) }));

    const controller = new AbortController();
    const seen: TrainProgress[] = [];
    const first = await finetune(
      options('killed', data, {
        networks: tinyNetworks(3),
        signal: controller.signal,
        onProgress: (e) => {
          seen.push(e);
          if (e.step === 5) controller.abort();
        },
      }),
    );
    expect(first.cancelled).toBe(true);
    expect(seen.at(-1)!.step).toBe(5);
    expect(first.snapshots.map((s) => s.epoch)).toEqual([1, 2]);
    // A write that died half-way leaves only a temporary file, which resuming ignores.
    await writeFile(join(workDir, 'killed', 'snapshot-epoch00003.safetensors.tmp-1-dead'), 'partial');

    const second = await finetune(options('killed', data, { networks: tinyNetworks(3) }));
    expect(second.resumedFrom).toBe(join(workDir, 'killed', 'snapshot-epoch00002.safetensors'));
    expect(second.snapshots.map((s) => s.epoch)).toEqual(straight.snapshots.map((s) => s.epoch));
    expect(second.state).toMatchObject({
      epoch: 4,
      imagesSeen: straight.state.imagesSeen,
      step: straight.state.step,
    });
    for (const s of second.snapshots) {
      const info = await readCheckpointInfo(s.path);
      expect(info.meta.epoch).toBe(s.epoch);
    }
  });

  it('snapshots on an epoch ladder as well as every snapshotEvery epochs', async () => {
    const data = solidImages(4, [200, 80, 80]);
    const events: TrainProgress[] = [];
    const result = await finetune(
      options('ladder', data, {
        epochs: 6,
        snapshotEvery: 4,
        snapshotEpochs: [1, 2, 5],
        previewSeeds: [],
        onProgress: (e) => events.push(e),
      }),
    );
    expect(result.snapshots.map((s) => s.epoch)).toEqual([1, 2, 4, 5, 6]);
    expect(events.filter((e) => e.snapshot).map((e) => e.epoch)).toEqual([1, 2, 4, 5, 6]);
  });

  it('defaults to the official auto configuration, in whole minibatch-std groups', () => {
    const paper = defaultHyperparameters(256, 1000, 8);
    expect(paper).toMatchObject({ batchSize: 16, batchGpu: 16, r1Gamma: 0.8192, emaKimg: 5, plWeight: 2 });
    expect(paper).toMatchObject({
      r1Interval: 16,
      plInterval: 4,
      styleMixing: 0.9,
      adaTarget: 0.6,
      adaKimg: 500,
    });
    expect(defaultHyperparameters(32, 6, 4).batchSize).toBe(4);
    expect(defaultHyperparameters(8, 3, 4).batchSize).toBe(3);
  });

  it('rejects options that cannot train', async () => {
    const data = solidImages(4, [0, 0, 0]);
    await expect(finetune(options('bad1', data, { hyper: { batchSize: 4, batchGpu: 3 } }))).rejects.toThrow(
      UserError,
    );
    await expect(finetune(options('bad2', data, { epochs: 0 }))).rejects.toThrow(UserError);
    await expect(finetune(options('bad4', data, { snapshotEpochs: [2, 5] }))).rejects.toThrow(
      /snapshot epochs must be whole epochs from 1 to 4, got 5/,
    );
    await expect(finetune(options('bad3', new TrainingSet(new Uint8Array(16 * 16 * 3), 16)))).rejects.toThrow(
      /16x16 but the model is 8x8/,
    );
  });
});
